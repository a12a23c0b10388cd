"""Juries (Verga et al. 2024, "Replacing Judges with Juries"): several judge models judge the same items
and each item's verdict is their aggregate. Pure: plain values in, plain values out.

``majority`` (pairwise): the verdict most judges gave; verdicts sharing the most votes make a ``"tie"``.
``weighted`` (pairwise): each judge's verdict counts its ``weight``; the verdict with the largest total
weight wins (equal largest totals make a ``"tie"``). ``mean`` (single): the mean of the judges' scores.
``weighted`` (single): the weighted mean ``sum(w * score) / sum(w)``. A judge whose item ended in error
is left out; an item no judge could judge is an error.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.judging.domain import Mode, Verdict
from app.judging.samples import VERDICTS, majority

Aggregate = Literal["majority", "mean", "weighted"]

# Which aggregates each mode accepts, and its default.
AGGREGATES: dict[Mode, tuple[Aggregate, ...]] = {
    "pairwise": ("majority", "weighted"),
    "single": ("mean", "weighted"),
}
DEFAULT_AGGREGATE: dict[Mode, Aggregate] = {"pairwise": "majority", "single": "mean"}


@dataclass(frozen=True)
class JudgeVote:
    """One judge's result for one item: its verdict (pairwise) or score (single), None when its item
    ended in error; ``by_order``: its verdict in each order it judged (``AB``, ``BA``), for the jury's
    own position consistency."""

    weight: float
    verdict: Verdict | None = None
    score: float | None = None
    by_order: dict[str, Verdict] | None = None


@dataclass(frozen=True)
class JuryOutcome:
    """The item's aggregate. ``agreement``: the share of the judges (that gave a verdict or score) who
    gave the jury's verdict (pairwise) or the most common score (single); ``votes``: per verdict, the
    judges (majority) or the weight (weighted) behind it; ``score_std``: the judges' scores' sample
    standard deviation; ``consistent``: whether the jury's verdict over the judges' first-order verdicts
    equals its verdict over their swapped-order verdicts (None unless every judge judged both orders)."""

    verdict: Verdict | None = None
    score: float | None = None
    votes: dict[str, float] | None = None
    agreement: float | None = None
    score_std: float | None = None
    consistent: bool | None = None
    error: str | None = None


def weighted_verdict(
    verdicts: Sequence[Verdict], weights: Sequence[float]
) -> tuple[Verdict, dict[str, float]]:
    """The verdict with the largest total weight (equal largest totals: ``"tie"``) and the totals."""
    if not verdicts:
        raise ValueError("no verdicts to weigh")
    totals: dict[str, float] = dict.fromkeys(VERDICTS, 0.0)
    for verdict, weight in zip(verdicts, weights, strict=True):
        totals[verdict] += weight
    top = max(totals.values())
    leaders = [v for v in VERDICTS if math.isclose(totals[v], top)]
    return (leaders[0] if len(leaders) == 1 else "tie"), totals


def _pairwise_verdict(aggregate: Aggregate, verdicts: Sequence[Verdict], weights: Sequence[float]) -> Verdict:
    if aggregate == "weighted":
        return weighted_verdict(verdicts, weights)[0]
    return majority(verdicts)


def jury_verdict(mode: Mode, aggregate: Aggregate, votes: Sequence[JudgeVote]) -> JuryOutcome:
    """The item's aggregate over its judges' ``votes``. Raises ``ValueError`` for an aggregate the mode
    does not take (see :data:`AGGREGATES`)."""
    if aggregate not in AGGREGATES[mode]:
        raise ValueError(f"aggregate {aggregate!r} does not apply to {mode} judging")
    if mode == "pairwise":
        return _pairwise(aggregate, votes)
    return _single(aggregate, votes)


def _pairwise(aggregate: Aggregate, votes: Sequence[JudgeVote]) -> JuryOutcome:
    given = [v for v in votes if v.verdict is not None]
    if not given:
        return JuryOutcome(error="no judge gave a verdict")
    verdicts = [v.verdict for v in given if v.verdict is not None]
    weights = [v.weight for v in given]
    verdict = _pairwise_verdict(aggregate, verdicts, weights)
    totals: dict[str, float]
    if aggregate == "weighted":
        totals = weighted_verdict(verdicts, weights)[1]
    else:  # judges counted (whole numbers)
        counts = Counter(verdicts)
        totals = {label: counts[label] for label in VERDICTS}
    return JuryOutcome(
        verdict=verdict,
        votes=totals,
        agreement=sum(v == verdict for v in verdicts) / len(verdicts),
        consistent=_consistent(aggregate, votes),
    )


def _consistent(aggregate: Aggregate, votes: Sequence[JudgeVote]) -> bool | None:
    """The jury's position consistency: its verdict over every judge's ``AB`` verdict against its
    verdict over every judge's ``BA`` verdict (None unless every judge has both)."""
    if not votes or any(v.by_order is None or set(v.by_order) != {"AB", "BA"} for v in votes):
        return None
    weights = [v.weight for v in votes]
    first = [v.by_order["AB"] for v in votes if v.by_order is not None]
    second = [v.by_order["BA"] for v in votes if v.by_order is not None]
    return _pairwise_verdict(aggregate, first, weights) == _pairwise_verdict(aggregate, second, weights)


def _single(aggregate: Aggregate, votes: Sequence[JudgeVote]) -> JuryOutcome:
    given = [v for v in votes if v.score is not None]
    if not given:
        return JuryOutcome(error="no judge gave a score")
    scores = [v.score for v in given if v.score is not None]
    weights = [v.weight for v in given] if aggregate == "weighted" else [1.0] * len(given)
    mean = math.fsum(w * s for w, s in zip(weights, scores, strict=True)) / math.fsum(weights)
    return JuryOutcome(
        score=mean,
        agreement=Counter(scores).most_common(1)[0][1] / len(scores),
        score_std=statistics.stdev(scores) if len(scores) > 1 else None,
    )
