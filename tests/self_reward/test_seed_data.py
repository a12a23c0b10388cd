"""The shipped self-rewarding seed data: sizes, score coverage, judgment format, disjoint prompts."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import cast

import pytest

from app.self_reward.rubric import eft_judgment_ok
from app.self_reward.seed_data import EftSplit, eft_examples, ift_examples

SCORES = range(6)
SPLITS: tuple[EftSplit, ...] = ("train", "heldout")


def test_ift_examples() -> None:
    examples = ift_examples()
    assert len(examples) >= 64
    for ex in examples:
        assert ex.prompt.strip() and ex.response.strip()
    prompts = [ex.prompt for ex in examples]
    assert len(set(prompts)) == len(prompts)


@pytest.mark.parametrize(("split", "minimum", "per_score"), [("train", 44, 5), ("heldout", 20, 1)])
def test_eft_examples(split: EftSplit, minimum: int, per_score: int) -> None:
    examples = eft_examples(split)
    assert len(examples) >= minimum
    counts = Counter(ex.score for ex in examples)
    assert set(counts) == set(SCORES)
    assert all(counts[score] >= per_score for score in SCORES)
    for ex in examples:
        assert ex.prompt.strip() and ex.response.strip()
        assert len(ex.response.split()) < 120, ex.prompt
        lines = ex.judgment.strip().splitlines()
        assert len(lines) >= 2, ex.prompt
        assert lines[-1] == f"Score: {ex.score}", ex.prompt
        assert "Score:" not in "\n".join(lines[:-1]), ex.prompt
        # The judge parser reads back the same score (no stray score-like phrase before the last line).
        assert eft_judgment_ok(ex) is None, ex.prompt
    pairs = [(ex.prompt, ex.response) for ex in examples]
    assert len(set(pairs)) == len(pairs)


def test_train_prompts_are_distinct() -> None:
    prompts = [ex.prompt for ex in eft_examples("train")]
    assert len(set(prompts)) == len(prompts)


def test_heldout_ranks_several_responses_per_prompt() -> None:
    """The paper's judge measures (Table 4) rank the responses to one prompt against each other: every
    held-out prompt has at least 3 responses, with distinct scores so that gold gives a strict order."""
    scores: dict[str, list[int]] = defaultdict(list)
    for ex in eft_examples("heldout"):
        scores[ex.prompt].append(ex.score)
    assert len(scores) >= 8
    for prompt, given in scores.items():
        assert len(given) >= 3, prompt
        assert len(set(given)) == len(given), prompt


def test_unknown_split() -> None:
    with pytest.raises(ValueError):
        eft_examples(cast(EftSplit, "dev"))


def test_no_prompt_shared_between_files() -> None:
    sets = {
        "ift": {ex.prompt for ex in ift_examples()},
        "train": {ex.prompt for ex in eft_examples("train")},
        "heldout": {ex.prompt for ex in eft_examples("heldout")},
    }
    assert not sets["ift"] & sets["train"]
    assert not sets["ift"] & sets["heldout"]
    assert not sets["train"] & sets["heldout"]


def test_prompts_are_self_contained() -> None:
    prompts = [ex.prompt for ex in ift_examples()]
    prompts += [ex.prompt for split in SPLITS for ex in eft_examples(split)]
    pattern = re.compile(r"\b(images?|files?|urls?|https?://)", re.IGNORECASE)
    offending = [p for p in prompts if pattern.search(p)]
    assert offending == []
