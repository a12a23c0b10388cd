"""A spec's learning-rate floor and dropout reach TRL and the model as the paper's settings mean them:
the rate decays along a cosine to the floor by the last step, and dropout acts in training only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments, get_scheduler

from app.training.dpo import dpo_config
from app.training.loading import load_model
from app.training.sft import sft_config
from app.training.specs import DPOSpec, SFTSpec
from tests.training.tiny_model import make_tiny_model

PATHS = {"base_path": "/m", "output_path": "/o"}
EXAMPLES = [{"prompt": "What is 2+2?", "completion": "2+2 equals 4."}]
PAIRS = [{"prompt": "What is 2+2?", "chosen": "4.", "rejected": "5."}]


def rates(args: TrainingArguments, steps: int) -> list[float]:
    """The learning rate of each optimizer step and after the last, from the scheduler that the
    Trainer builds from ``args`` (``Trainer.create_scheduler``)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=args.get_warmup_steps(steps),
        num_training_steps=steps,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return [*out, optimizer.param_groups[0]["lr"]]


@pytest.mark.parametrize(
    "args",
    [
        sft_config(
            SFTSpec(**PATHS, examples=EXAMPLES, learning_rate=5.5e-6, min_learning_rate=1.1e-6), Path("/w")
        ),
        dpo_config(DPOSpec(**PATHS, pairs=PAIRS, learning_rate=1e-6, min_learning_rate=1e-7), Path("/w")),
    ],
    ids=["sft", "dpo"],
)
def test_the_learning_rate_decays_along_a_cosine_to_the_floor(args: TrainingArguments) -> None:
    top, floor = args.learning_rate, args.lr_scheduler_kwargs["min_lr"]
    lrs = rates(args, 10)
    assert lrs[0] == pytest.approx(top)  # no warmup
    assert lrs[5] == pytest.approx((top + floor) / 2)  # half way down the cosine
    assert lrs[-1] == pytest.approx(floor)
    assert lrs == sorted(lrs, reverse=True)


def test_a_floor_equal_to_the_rate_keeps_it_constant() -> None:
    spec = DPOSpec(**PATHS, pairs=PAIRS, learning_rate=1e-6, min_learning_rate=1e-6)
    assert rates(dpo_config(spec, Path("/w")), 4) == pytest.approx([1e-6] * 5)


def test_dpo_keeps_the_policys_dropout_only_when_the_spec_asks_for_it() -> None:
    # TRL's default zeroes every dropout module of the policy and the reference.
    assert dpo_config(DPOSpec(**PATHS, pairs=PAIRS, dropout=0.1), Path("/w")).disable_dropout is False
    assert dpo_config(DPOSpec(**PATHS, pairs=PAIRS, dropout=0.0), Path("/w")).disable_dropout is True


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "base", ["What is 2+2? 2+2 equals 4."])


def test_dropout_reaches_the_attention_modules_and_acts_in_training_only(tiny_base: Path) -> None:
    model = load_model(str(tiny_base), dropout=0.1)
    attention = [m for name, m in model.named_modules() if name.endswith("self_attn")]
    assert attention and all(m.attention_dropout == 0.1 for m in attention)  # copied when built
    ids = torch.arange(2, 12).unsqueeze(0)
    torch.manual_seed(0)
    model.train()
    assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model.eval()
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_without_a_dropout_the_models_own_config_stays(tiny_base: Path) -> None:
    assert load_model(str(tiny_base)).config.attention_dropout == 0.0
    assert load_model(str(tiny_base), dropout=0.0).config.attention_dropout == 0.0
