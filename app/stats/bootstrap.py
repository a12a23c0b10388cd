"""Bootstrap resampling, done by drawing how often each distinct observation is picked (a multinomial
draw is the same distribution as resampling the observations one by one, in far less memory). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The level of every interval the summaries report.
LEVEL = 0.95
# Rows of one multinomial draw at a time (rounds x distinct values), to bound memory.
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval; equal ends when nothing was resampled."""

    low: float
    high: float


def percentile_interval(samples: np.ndarray, point: float, level: float = LEVEL) -> Interval:
    """The central ``level`` interval of bootstrap ``samples`` (the point estimate twice when there are
    none)."""
    if samples.size == 0:
        return Interval(point, point)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(low), float(high))


def resampled_counts(counts: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """``rounds`` bootstrap resamples of observations given as ``counts`` of distinct values: an array
    (rounds, len(counts)) of how often each value was drawn; each row sums to ``counts.sum()``."""
    total = int(counts.sum())
    if rounds <= 0 or total == 0:
        return np.zeros((0, counts.size), dtype=np.int64)
    return rng.multinomial(total, counts / total, size=rounds)


def resampled_means(values: Sequence[float], rounds: int, rng: np.random.Generator) -> np.ndarray:
    """The means of ``rounds`` bootstrap resamples of ``values`` (empty when there are none)."""
    distinct, counts = np.unique(np.asarray(values, dtype=float), return_counts=True)
    if rounds <= 0 or distinct.size == 0:
        return np.zeros(0)
    step = max(1, _CHUNK_CELLS // distinct.size)
    means = [
        resampled_counts(counts, min(step, rounds - start), rng) @ distinct / counts.sum()
        for start in range(0, rounds, step)
    ]
    return np.concatenate(means)
