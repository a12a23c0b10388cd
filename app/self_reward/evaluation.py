"""Metrics of a self-rewarding iteration: how well the model judges, measured as the paper's Table 4
does (responses ranked against gold *within each prompt*: pairwise accuracy, exact order match, 5-best,
Spearman and Kendall tau), and how often the new model beats the previous one head to head."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

from app.self_reward.stages import mean, words

# One prompt's responses: (judge score or None when unparsed, gold score) for each.
Group = Sequence[tuple[float | None, float]]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def pairwise_accuracy(groups: Sequence[Group]) -> float | None:
    """Over every pair of responses *to the same prompt* with different gold scores and both judge
    scores present, the share the judge orders as gold does (the paper's "pairwise accuracy"); a judge
    tie is a disagreement. None when no pair is comparable."""
    agreed = compared = 0
    for group in groups:
        for (judge_i, gold_i), (judge_j, gold_j) in combinations(group, 2):
            if gold_i == gold_j or judge_i is None or judge_j is None:
                continue
            compared += 1
            agreed += _sign(judge_i - judge_j) == _sign(gold_i - gold_j)
    return agreed / compared if compared else None


def exact_match(groups: Sequence[Group]) -> float | None:
    """The share of prompts (with 2 responses or more) whose responses the judge orders exactly as gold
    does, ties included (the paper's "exact match"); a prompt with an unparsed judgment does not match.
    None without such a prompt."""
    ranked = [g for g in groups if len(g) >= 2]
    if not ranked:
        return None
    matched = sum(
        all(j is not None for j, _ in g)
        and all(
            _sign(ji - jj) == _sign(gi - gj)  # type: ignore[operator]
            for (ji, gi), (jj, gj) in combinations(g, 2)
        )
        for g in ranked
    )
    return matched / len(ranked)


def five_best(groups: Sequence[Group], top: float = 5.0) -> float | None:
    """Of the responses the judge gives a perfect ``top`` score, the share that gold ranks best for
    their prompt (the paper's "5-best"). None when the judge gave no perfect score."""
    perfect = [(gold, max(g for _, g in group)) for group in groups for judge, gold in group if judge == top]
    return sum(gold == best for gold, best in perfect) / len(perfect) if perfect else None


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


def kendall_tau(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties corrected, as scipy's default); None with fewer than 2 items or when either
    side is constant. Raises ``ValueError`` on unequal lengths."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} values against {len(ys)}")
    concordant = discordant = ties_x = ties_y = 0
    for (xi, yi), (xj, yj) in combinations(zip(xs, ys, strict=True), 2):
        sx, sy = _sign(xi - xj), _sign(yi - yj)
        if sx == 0 and sy == 0:
            continue
        if sx == 0:
            ties_x += 1
        elif sy == 0:
            ties_y += 1
        elif sx == sy:
            concordant += 1
        else:
            discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else None


def _per_prompt(groups: Sequence[Group], measure: Any) -> tuple[float | None, int]:
    """The mean over prompts of ``measure(judge, gold)`` (parsed judgments only), and how many prompts
    it was defined for."""
    values = []
    for group in groups:
        both = [(j, g) for j, g in group if j is not None]
        value = measure([j for j, _ in both], [g for _, g in both]) if len(both) >= 2 else None
        if value is not None:
            values.append(value)
    return mean(values), len(values)


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


def group_by_prompt(
    prompts: Sequence[str], judged: Sequence[float | None], gold: Sequence[float]
) -> list[Group]:
    """The (judge, gold) scores of each prompt's responses, prompts in order of first appearance."""
    groups: dict[str, list[tuple[float | None, float]]] = defaultdict(list)
    for prompt, judge, score in zip(prompts, judged, gold, strict=True):
        groups[prompt].append((judge, score))
    return list(groups.values())


def judge_quality(
    prompts: Sequence[str], judged: Sequence[float | None], gold: Sequence[float]
) -> dict[str, Any]:
    """How well the judge's scores (``judged``, None where unparsed) rank each prompt's responses against
    ``gold``: the paper's measures (Table 4), then two of ours, named as such: ``score_match`` (the
    judge's score equals gold's) and ``pooled_spearman`` (Spearman over every response of every
    prompt, the measure reported before the paper's)."""
    groups = group_by_prompt(prompts, judged, gold)
    spearman_mean, spearman_prompts = _per_prompt(groups, spearman)
    kendall_mean, kendall_prompts = _per_prompt(groups, kendall_tau)
    both = [(j, g) for j, g in zip(judged, gold, strict=True) if j is not None]
    return {
        "n": len(gold),
        "prompts": len(groups),
        "parse_failures": sum(1 for j in judged if j is None),
        "pairwise_accuracy": pairwise_accuracy(groups),
        "exact_match": exact_match(groups),
        "five_best": five_best(groups),
        "spearman": spearman_mean,
        "spearman_prompts": spearman_prompts,
        "kendall_tau": kendall_mean,
        "kendall_tau_prompts": kendall_prompts,
        "score_match": sum(j == g for j, g in both) / len(gold) if gold else None,
        "pooled_spearman": spearman([j for j, _ in both], [g for _, g in both]),
    }


def heldout_evaluation(
    quality: dict[str, Any], after: Sequence[str], before: Sequence[str]
) -> dict[str, Any]:
    """An iteration's evaluation: the new model's judging of the held-out EFT answers
    (:func:`judge_quality`), and the mean length of its answers to the held-out prompts (``after``) and
    of the previous model's (``before``)."""
    return {
        "eft_heldout": quality,
        "mean_response_words": mean([words(a) for a in after]),
        "previous_mean_response_words": mean([words(b) for b in before]),
    }
