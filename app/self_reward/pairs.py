"""Preference pairs from self-judged candidates: the best-scored answer to a prompt is chosen, the
worst rejected (Yuan et al. 2024); a prompt whose answers all score the same gives no pair."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from app.self_reward.domain import PairDecision, PairSettings, ScoredCandidate
from app.self_reward.rubric import MAX_SCORE

# Means of the same scores summed in another order can differ in the last bits; they are one score.
_MEAN_DIGITS = 9


def _mean(candidate: ScoredCandidate) -> float:
    mean = candidate.mean
    assert mean is not None  # callers pass only scored candidates
    return round(mean, _MEAN_DIGITS)


def _variance(candidate: ScoredCandidate) -> float:
    variance = candidate.variance
    return variance if variance is not None else math.inf


def select_pair(candidates: Sequence[ScoredCandidate], settings: PairSettings) -> PairDecision:
    """The chosen (highest mean score) and rejected (lowest mean score) candidate indexes of one
    prompt, with a reason such as ``"4.33 vs 1.67"``; or no pair, and why.

    Only finished candidates with at least one parsed score take part. Among candidates with an equal
    mean, the one whose judge samples agree more (lower variance) is preferred, then, with
    ``settings.length_control``, the shorter text as chosen and the longer as rejected, then the lower
    index.
    """
    scored = [c for c in candidates if c.finished and c.mean is not None]
    if len(scored) < 2:
        return PairDecision(None, None, "fewer than 2 scored candidates")
    means = {_mean(c) for c in scored}
    if len(means) == 1:
        return PairDecision(None, None, f"all candidates tie at {_mean(scored[0]):.2f}")

    def length(candidate: ScoredCandidate) -> int:
        return len(candidate.text) if settings.length_control else 0

    chosen = min(scored, key=lambda c: (-_mean(c), _variance(c), length(c), c.index))
    rejected = min(scored, key=lambda c: (_mean(c), _variance(c), -length(c), c.index))
    return PairDecision(chosen.index, rejected.index, f"{_mean(chosen):.2f} vs {_mean(rejected):.2f}")


def score_histogram(scores: Iterable[float]) -> dict[str, int]:
    """Counts of scores by nearest whole point, keyed "0" to "5", every key present.

    Halves round up (2.5 counts as "3"); values outside 0-5 count in the nearest end bucket and NaN
    is skipped.
    """
    counts = {str(point): 0 for point in range(MAX_SCORE + 1)}
    for score in scores:
        if math.isnan(score):
            continue
        point = min(max(math.floor(score + 0.5), 0), MAX_SCORE)
        counts[str(point)] += 1
    return counts
