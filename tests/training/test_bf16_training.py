"""SFT under bfloat16 autocast against float32 on the same small run of the real default model.

What is compared: the first logged loss (the same weights' forward pass, bf16 rounding alone), and the
trained models, each evaluated in float32 on the run's examples. Not the later logged losses: measured
on a machine with native bf16 (2026-12-07), a bf16 forward of float32 master weights reads a loss far
below theirs once they move off the checkpoint's bf16 grid (after one float32 AdamW step at lr 5e-6:
1.656 under autocast against 1.964 in float32). The checkpoint is stored in bf16, so a small update
rounds either back (nothing) or a whole bf16 step further (up to twice the update) along the update:
the autocast forward sees an amplified step. The trained weights agree (float32 losses 1.734 and
1.729 after three steps), which is what training in bf16 must preserve."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

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
    # Three optimizer steps, each over the same three short conversations (one batch, three epochs, a
    # constant rate): a curve over the same data, so step-to-step changes are the training's alone.
    # A few GB at most, seconds on two cores.
    return SFTSpec(
        base_path=base,
        output_path=str(output),
        examples=EXAMPLES,
        learning_rate=2e-5,
        min_learning_rate=2e-5,
        epochs=3,
        batch_size=3,
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


def _float32_loss(folder: str) -> float:
    """The model's mean completion loss on EXAMPLES, in float32 (the SFT's chat layout)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    losses = []
    with torch.no_grad():
        for example in EXAMPLES:
            prompt = [{"role": "user", "content": example["prompt"]}]
            conversation = [*prompt, {"role": "assistant", "content": example["completion"]}]
            head = tokenizer(
                tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False),
                add_special_tokens=False,
            )["input_ids"]
            whole = tokenizer(
                tokenizer.apply_chat_template(conversation, tokenize=False), add_special_tokens=False
            )
            ids = torch.tensor([whole["input_ids"]])
            labels = ids.clone()
            labels[0, : len(head)] = -100
            losses.append(float(model(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)


@pytest.mark.model
def test_bf16_autocast_sft_trains_like_float32(tmp_path: Path) -> None:
    base = model_dir(Settings().models_dir, DEFAULT_MODEL)
    if not is_model_present(base):
        pytest.skip(f"the default model is not at {base}; pull it with `judge models pull`")
    full_run = run_sft(spec(tmp_path / "fp32", False, str(base)))
    half_run = run_sft(spec(tmp_path / "bf16", True, str(base)))
    full, half = full_run.metrics["loss_history"], half_run.metrics["loss_history"]
    assert len(full) == len(half) == 3
    assert all(math.isfinite(loss) for loss in half)
    # The first step is the same weights' forward pass: bf16 rounding alone (~0.4 % per value).
    assert abs(full[0] - half[0]) <= 0.02 * full[0] + 0.005, (full, half)
    assert full != half, "bf16 autocast changed nothing: it did not act"
    assert full[-1] < full[0] and half[-1] < half[0], (full, half)  # both logged curves fall
    # The trained models, in float32: both learned, by the same amount.
    before = _float32_loss(str(base))
    after_full, after_half = _float32_loss(full_run.output_path), _float32_loss(half_run.output_path)
    assert after_full < 0.9 * before and after_half < 0.9 * before, (before, after_full, after_half)
    assert abs(after_full - after_half) <= 0.05 * (before - after_full), (before, after_full, after_half)
