"""SFT and DPO with TRL on the real default model (CPU, float32), in process and in a child process.

Each run is a couple of optimizer steps on a handful of short conversations: enough to see the loss
move and the weights change, small enough for a CPU.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.core.config import DEFAULT_MODEL, Settings
from app.models.artifacts import is_model_present, model_dir
from app.training.dpo import run_dpo
from app.training.runner import TrainingFailed, run_in_subprocess
from app.training.sft import run_sft
from app.training.specs import DPOSpec, LoraSpec, SFTSpec

pytestmark = pytest.mark.model

PAIRS = [
    {
        "prompt": "What is 2+2?",
        "chosen": "2+2 equals 4.",
        "rejected": "It is 5, obviously.",
    },
    {
        "prompt": "Name the capital of France.",
        "chosen": "The capital of France is Paris.",
        "rejected": "London.",
    },
]
EXAMPLES = [{"prompt": p["prompt"], "completion": p["chosen"]} for p in PAIRS]


@pytest.fixture(scope="module")
def base_path() -> Path:
    path = model_dir(Settings().models_dir, DEFAULT_MODEL)
    if not is_model_present(path):
        pytest.skip(f"the default model is not at {path}; pull it with `judge models pull`")
    return path


@pytest.fixture(scope="module")
def base_weights(base_path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(base_path / "model.safetensors"))


def assert_trained_model(output: Path, base_weights: dict[str, torch.Tensor]) -> None:
    """``output`` is a complete model folder that loads with transformers, with changed weights."""
    assert is_model_present(output)
    model = AutoModelForCausalLM.from_pretrained(output, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert tokenizer.chat_template
    assert model.config.use_cache, "the training-time config leaked into the saved model"
    state = model.state_dict()
    assert set(base_weights) <= set(state)
    changed = [name for name, weight in base_weights.items() if not torch.equal(state[name], weight)]
    assert changed, "no weight changed"
    assert not any(name.startswith("base_model.") or "lora_" in name for name in state), "adapter not merged"
    # Nothing but the output folder is left next to it: the staging folder is gone.
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name]


def test_sft_saves_a_loadable_fine_tuned_model(
    base_path: Path, base_weights: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    output = tmp_path / "sft"
    spec = SFTSpec(
        base_path=str(base_path), output_path=str(output), examples=EXAMPLES, learning_rate=1e-4, batch_size=1
    )

    result = run_sft(spec)

    assert result.output_path == str(output)
    assert result.metrics["steps"] == 2
    assert len(result.metrics["loss_history"]) == 2
    assert all(math.isfinite(loss) and loss > 0 for loss in result.metrics["loss_history"])
    assert result.metrics["train_loss"] > 0
    assert_trained_model(output, base_weights)


def test_dpo_loss_falls_from_ln2(
    base_path: Path, base_weights: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    output = tmp_path / "dpo"
    # Two passes over the same two pairs: the second step sees pairs the first one has learned.
    spec = DPOSpec(
        base_path=str(base_path),
        output_path=str(output),
        pairs=PAIRS,
        learning_rate=1e-4,
        epochs=2,
        batch_size=2,
    )

    metrics = run_dpo(spec).metrics

    # The policy starts equal to the reference: zero margin, loss -log(sigmoid(0)) = ln 2.
    assert metrics["first_loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert metrics["reward_margins"][0] == pytest.approx(0.0, abs=1e-3)
    assert metrics["steps"] == 2
    assert metrics["last_loss"] < metrics["first_loss"] - 0.05
    assert metrics["reward_margins"][-1] > 0
    assert metrics["rewards_chosen"] > metrics["rewards_rejected"]
    assert metrics["accuracies"] == 1.0
    assert_trained_model(output, base_weights)


def test_lora_dpo_in_a_child_process_saves_a_merged_model(
    base_path: Path, base_weights: dict[str, torch.Tensor], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "dpo-lora"
    spec = DPOSpec(
        base_path=str(base_path),
        output_path=str(output),
        pairs=PAIRS,
        learning_rate=1e-3,
        batch_size=2,
        lora=LoraSpec(r=4, alpha=8),
    )

    with caplog.at_level(logging.INFO, logger="app.training.child"):
        result = run_in_subprocess("dpo", spec, timeout_s=600)

    assert result.output_path == str(output)
    assert result.metrics["steps"] == 1
    assert result.metrics["first_loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert "reward_margins" in result.metrics
    # The child's per-step log reached this process's logger.
    assert any("step 1/1" in r.getMessage() for r in caplog.records if r.name == "app.training.child")
    assert_trained_model(output, base_weights)


def test_a_failing_child_raises_training_failed_with_its_error(tmp_path: Path) -> None:
    spec = DPOSpec(base_path=str(tmp_path / "missing"), output_path=str(tmp_path / "out"), pairs=PAIRS)

    with pytest.raises(TrainingFailed, match="base model folder not found") as info:
        run_in_subprocess("dpo", spec, timeout_s=300)

    assert "exit code 1" in str(info.value)
    assert "Traceback" in info.value.output_tail
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_child_past_its_timeout_is_killed(tmp_path: Path) -> None:
    spec = SFTSpec(base_path=str(tmp_path), output_path=str(tmp_path / "out"), examples=EXAMPLES)

    with pytest.raises(TrainingFailed, match="timed out after 0.5s"):
        run_in_subprocess("sft", spec, timeout_s=0.5)


def test_an_existing_output_is_refused_before_training(base_path: Path, tmp_path: Path) -> None:
    output = tmp_path / "taken"
    output.mkdir()
    spec = SFTSpec(base_path=str(base_path), output_path=str(output), examples=EXAMPLES)

    with pytest.raises(FileExistsError):
        run_sft(spec)
