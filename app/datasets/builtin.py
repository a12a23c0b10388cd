"""The datasets shipped with the service (package data under ``app/data/datasets``)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Literal, get_args

BuiltinName = Literal["reviews", "judge_agreement"]
Split = Literal["train", "dev", "test"]

BUILTIN_NAMES: tuple[str, ...] = get_args(BuiltinName)
SPLITS: tuple[str, ...] = get_args(Split)


def builtin_split(name: str, split: str) -> list[dict[str, str]]:
    """The rows of a shipped dataset's split, in file order: input fields plus ``label``.

    ``name`` is ``reviews`` (``text``; ``positive``/``negative``) or ``judge_agreement``
    (``question``, ``answer_a``, ``answer_b``; ``A``/``B``/``tie``); ``split`` is train, dev or test.
    """
    if name not in BUILTIN_NAMES:
        raise ValueError(f"unknown built-in dataset '{name}' (known: {', '.join(BUILTIN_NAMES)})")
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")
    path = resources.files("app").joinpath("data", "datasets", name, f"{split}.jsonl")
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
