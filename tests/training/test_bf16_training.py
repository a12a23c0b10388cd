"""SFT under bfloat16 autocast against float32 on the same small run of the real default model: the
loss curves stay close (and differ: the autocast acted)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from app.core.config import DEFAULT_MODEL, Settings
from app.engine.precision import Precision
from app.models.artifacts import is_model_present, model_dir
from app.training import loading
from app.training.sft import run_sft, sft_config
from app.training.specs import SFTSpec

EXAMPLES = [
    {"prompt": "What is 2+2?", "completion": "2+2 equals 4."},
    {"prompt": "Name the capital of France.", "completion": "The capital of France is Paris."},
    {"prompt": "Is the sun a star?", "completion": "Yes, the sun is a star."},
]


def spec(output: Path, bf16: bool | None, base: str = "/models/base") -> SFTSpec:
    # Three optimizer steps of one short conversation each: a few GB at most, a minute on two cores.
    return SFTSpec(
        base_path=base,
        output_path=str(output),
        examples=EXAMPLES,
        learning_rate=1e-4,
        batch_size=1,
        max_length=64,
        bf16=bf16,
    )


def test_auto_trains_in_bf16_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(loading, "cpu_bf16", lambda: Precision("bfloat16", "auto: native bf16"))
    assert sft_config(spec(tmp_path / "a", None), tmp_path / "w").bf16 is True
    monkeypatch.setattr(loading, "cpu_bf16", lambda: Precision("float32", "auto: no bf16"))
    assert sft_config(spec(tmp_path / "b", None), tmp_path / "w").bf16 is False
    # A spec that says is obeyed either way.
    assert sft_config(spec(tmp_path / "c", True), tmp_path / "w").bf16 is True


@pytest.mark.model
def test_bf16_autocast_sft_loss_curve_follows_float32(tmp_path: Path) -> None:
    base = model_dir(Settings().models_dir, DEFAULT_MODEL)
    if not is_model_present(base):
        pytest.skip(f"the default model is not at {base}; pull it with `judge models pull`")
    full = run_sft(spec(tmp_path / "fp32", False, str(base))).metrics["loss_history"]
    half = run_sft(spec(tmp_path / "bf16", True, str(base))).metrics["loss_history"]
    assert len(full) == len(half) == 3
    assert all(math.isfinite(loss) for loss in half)
    for a, b in zip(full, half, strict=True):
        assert abs(a - b) <= 0.05 * a + 0.02, (full, half)
    assert full != half, "bf16 autocast changed nothing: it did not act"
