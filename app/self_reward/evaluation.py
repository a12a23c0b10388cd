"""Metrics of a self-rewarding iteration: how well the model judges (pairwise accuracy and Spearman
correlation against gold scores) and how often the new model beats the previous one head to head."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from app.self_reward.stages import mean, words


def pairwise_accuracy(judge_scores: Sequence[float | None], gold_scores: Sequence[float]) -> float | None:
    """Over every pair of items with different gold scores and both judge scores present, the share the
    judge orders the same way as gold; a judge tie counts half. None when no pair is comparable.

    Raises ``ValueError`` when the two sequences differ in length.
    """
    if len(judge_scores) != len(gold_scores):
        raise ValueError(f"{len(judge_scores)} judge scores but {len(gold_scores)} gold scores")
    pairs = zip(judge_scores, gold_scores, strict=True)
    items = [(judge, gold) for judge, gold in pairs if judge is not None]
    agreed = 0.0
    compared = 0
    for i, (judge_i, gold_i) in enumerate(items):
        for judge_j, gold_j in items[i + 1 :]:
            if gold_i == gold_j:
                continue
            compared += 1
            if judge_i == judge_j:
                agreed += 0.5
            elif (judge_i > judge_j) == (gold_i > gold_j):
                agreed += 1.0
    return agreed / compared if compared else None


def _average_ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        # Tied values share the mean of the 1-based ranks they span.
        rank = (start + end) / 2 + 1
        for k in range(start, end + 1):
            ranks[order[k]] = rank
        start = end + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman rank correlation (Pearson correlation of average ranks, so ties are handled); None
    with fewer than 2 items or when either side is constant. Raises ``ValueError`` on unequal
    lengths."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} values against {len(ys)}")
    if len(xs) < 2:
        return None
    rx, ry = _average_ranks(xs), _average_ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(vx * vy)))


_VERDICTS = ("A", "B", "tie")


def win_rate(verdicts: Sequence[str]) -> dict[str, float]:
    """Head-to-head results of the new model (A) against the old (B), from verdicts "A", "B" or "tie":
    ``{"win", "loss", "tie"}`` rates and ``win_rate`` = (wins + ties / 2) / n.

    Raises ``ValueError`` when there is no verdict or an unknown one.
    """
    if not verdicts:
        raise ValueError("no verdicts")
    unknown = sorted({v for v in verdicts if v not in _VERDICTS})
    if unknown:
        raise ValueError(f"unknown verdicts {unknown} (expected 'A', 'B' or 'tie')")
    n = len(verdicts)
    wins, losses, ties = (sum(v == label for v in verdicts) for label in _VERDICTS)
    return {"win": wins / n, "loss": losses / n, "tie": ties / n, "win_rate": (wins + ties / 2) / n}


def heldout_evaluation(
    judged: Sequence[float | None], gold: Sequence[float], after: Sequence[str], before: Sequence[str]
) -> dict[str, Any]:
    """An iteration's evaluation: the new model's rubric scores of the held-out EFT answers
    (``judged``, None where unparsed) against ``gold``, and the mean length of its answers to the
    held-out prompts (``after``) and of the previous model's (``before``)."""
    both = [(j, g) for j, g in zip(judged, gold, strict=True) if j is not None]
    return {
        "eft_heldout": {
            "n": len(gold),
            "parse_failures": sum(1 for j in judged if j is None),
            "pairwise_accuracy": pairwise_accuracy(judged, gold),
            "spearman": spearman([j for j, _ in both], [g for _, g in both]) if len(both) >= 2 else None,
        },
        "mean_response_words": mean([words(a) for a in after]),
        "previous_mean_response_words": mean([words(b) for b in before]),
    }
