"""The seed data shipped for self-rewarding jobs (package data under ``app/data/self_reward``): the
instruction-following examples (IFT) and the rubric-judged evaluation examples (EFT)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

from app.self_reward.domain import EvalExample, SeedExample

EftSplit = Literal["train", "heldout"]


def _rows(name: str) -> list[dict[str, Any]]:
    text = resources.files("app").joinpath("data", "self_reward", name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ift_examples() -> list[SeedExample]:
    """The instruction-following seed examples, in file order."""
    return [SeedExample(prompt=row["prompt"], response=row["response"]) for row in _rows("ift.jsonl")]


def eft_examples(split: EftSplit) -> list[EvalExample]:
    """The evaluation examples of ``split`` (``train`` or ``heldout``), in file order; each judgment ends
    in a line ``Score: N`` with N the 0-5 additive rubric score."""
    if split not in ("train", "heldout"):
        raise ValueError(f"unknown EFT split '{split}' (known: train, heldout)")
    return [
        EvalExample(
            prompt=row["prompt"],
            response=row["response"],
            judgment=row["judgment"],
            score=int(row["score"]),
        )
        for row in _rows(f"eft_{split}.jsonl")
    ]
