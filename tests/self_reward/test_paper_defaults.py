"""The request's defaults are the paper's settings (Yuan et al. 2024, section 3), except where the README's
table records why not."""

import pytest
import torch

from app.self_reward.schemas import SelfRewardRequest
from app.training.loading import resolve_dropout


def test_training_defaults_are_the_papers() -> None:
    request = SelfRewardRequest()
    assert (request.sft.learning_rate, request.sft.batch_size) == (5.5e-6, 16)
    assert (request.dpo.learning_rate, request.dpo.batch_size, request.dpo.beta) == (1e-6, 16, 0.1)
    assert request.dpo.loss_type == "sigmoid"


def test_generation_defaults_are_the_papers() -> None:
    request = SelfRewardRequest()
    assert (request.instruct.shots, request.instruct.seed_shots) == (8, 6)
    assert (request.instruct.temperature, request.instruct.top_p) == (0.6, 0.9)
    assert (request.candidates.n, request.candidates.temperature, request.candidates.top_p) == (4, 0.7, 0.9)
    assert (request.judge.samples, request.judge.temperature, request.judge.top_p) == (3, 0.7, 0.9)


def test_the_learning_rates_decay_as_the_papers_and_training_drops_out() -> None:
    request = SelfRewardRequest()
    assert (request.sft.learning_rate, request.sft.min_learning_rate, request.sft.dropout) == (
        5.5e-6,
        1.1e-6,
        None,
    )
    assert (request.dpo.learning_rate, request.dpo.min_learning_rate, request.dpo.dropout) == (
        1e-6,
        1e-7,
        None,
    )


def test_unset_dropout_is_the_papers_on_a_gpu_and_none_on_a_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_dropout(None) == 0.1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_dropout(None) == 0.0
    assert resolve_dropout(0.2) == 0.2  # a value asked for is kept on any device


def test_a_fixed_model_writes_the_prompts_by_default() -> None:
    request = SelfRewardRequest()
    assert (request.prompt_generation, request.prompt_generator) == ("fixed", None)


def test_the_training_options_reach_the_training_specs() -> None:
    request = SelfRewardRequest.model_validate(
        {
            "sft": {"learning_rate": 3e-5, "min_learning_rate": 3e-6, "dropout": 0.2, "lora": {"r": 4}},
            "dpo": {"learning_rate": 2e-6, "min_learning_rate": 0, "dropout": 0, "loss_type": "ipo"},
        }
    )
    sft = request.sft.spec("/m", "/o", [{"prompt": "Q?", "completion": "A."}], seed=7)
    assert (sft.learning_rate, sft.min_learning_rate, sft.dropout, sft.batch_size, sft.seed) == (
        3e-5,
        3e-6,
        0.2,
        16,
        7,
    )
    assert sft.lora is not None and (sft.lora.r, sft.lora.alpha) == (4, 16)
    dpo = request.dpo.spec("/m", "/o", [{"prompt": "Q?", "chosen": "A.", "rejected": "B."}], seed=8)
    assert (dpo.learning_rate, dpo.min_learning_rate, dpo.dropout, dpo.beta, dpo.loss_type) == (
        2e-6,
        0.0,
        0.0,
        0.1,
        "ipo",
    )
    assert dpo.lora is None
