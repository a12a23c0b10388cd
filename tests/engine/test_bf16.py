"""The transformers backend in bfloat16 against float32 on the real default model: the same verdicts
(label scoring and greedy generation, through the decoder and its shared prefix)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.base import Conversation, SamplingParams
from app.engine.transformers_backend import TransformersEngine

pytestmark = pytest.mark.model

SYSTEM = (
    "You are an impartial judge. You will see one user question and two answers to it from AI assistants. "
    "Decide which answer is better and reply with the letter of the better answer only."
)
ITEMS = [
    ("2+2?", "4", "5"),
    ("What is the capital of France?", "Paris.", "Lyon, the largest city of France by far."),
    ("What is the boiling point of water at sea level, in degrees Celsius?", "100", "About 90"),
    ("Is the sun a star?", "Yes.", "No."),
]


def judged(question: str, a: str, b: str) -> Conversation:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Question: {question}\nAnswer A: {a}\nAnswer B: {b}\nWhich is better?"},
    ]


PROMPTS = [judged(*item) for item in ITEMS]


@pytest.fixture(scope="module")
def bf16(default_model_path: Path) -> Iterator[TransformersEngine]:
    eng = TransformersEngine(default_model_path, "smol", device="cpu", dtype="bfloat16", batch_size=8)
    yield eng
    eng.close()


def verdict(text: str) -> str | None:
    found = re.search(r"\b([AB])\b", text)
    return found.group(1) if found else None


def test_bf16_engine_reports_its_dtype_and_halves_key_value_memory(
    bf16: TransformersEngine, wide: TransformersEngine
) -> None:
    assert bf16.precision.dtype == "bfloat16"
    assert wide.precision.dtype == "float32"
    assert bf16.kv_bytes_per_token * 2 == wide.kv_bytes_per_token


def test_label_probabilities_in_bf16_give_float32_verdicts(
    bf16: TransformersEngine, wide: TransformersEngine
) -> None:
    low = bf16.label_logprobs(PROMPTS, ["A", "B"])
    full = wide.label_logprobs(PROMPTS, ["A", "B"])
    for lo, fu in zip(low, full, strict=True):
        assert max(lo.probs, key=lo.probs.__getitem__) == max(fu.probs, key=fu.probs.__getitem__)
        assert abs(lo.probs["A"] - fu.probs["A"]) < 0.05
        assert abs(lo.mass - fu.mass) < 0.15 * fu.mass
    # Multi-token labels: summed log-probs of the label's tokens (float32 head and sums).
    words = ["Answer A", "Answer B"]
    for lo, fu in zip(bf16.label_logprobs(PROMPTS, words), wide.label_logprobs(PROMPTS, words), strict=True):
        assert abs(lo.probs["Answer A"] - fu.probs["Answer A"]) < 0.1


def test_greedy_generation_in_bf16_gives_float32_verdicts(
    bf16: TransformersEngine, wide: TransformersEngine
) -> None:
    sampling = SamplingParams(max_tokens=4)
    low = bf16.generate(PROMPTS, sampling)
    full = wide.generate(PROMPTS, sampling)
    assert [verdict(g.text) for g in low] == [verdict(g.text) for g in full]
    assert all(verdict(g.text) is not None for g in full)
