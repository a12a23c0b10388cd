"""Mean scores of graded answers, per model and per model and category, with bootstrap intervals.
Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

import numpy as np

from app.stats.bootstrap import Interval, percentile_interval, resampled_means
from app.stats.records import Grade


@dataclass(frozen=True)
class MeanScore:
    """A model's mean score over its grades (in ``category`` only, unless it is None)."""

    model: str
    category: str | None
    count: int
    mean: float
    interval: Interval


def _mean(
    model: str, category: str | None, values: list[float], rounds: int, rng: np.random.Generator
) -> MeanScore:
    mean = fmean(values)
    return MeanScore(
        model, category, len(values), mean, percentile_interval(resampled_means(values, rounds, rng), mean)
    )


def mean_scores(grades: Sequence[Grade], rounds: int, rng: np.random.Generator) -> list[MeanScore]:
    """Per model (``category`` None, best first), then per model within each category that the grades
    name (by category, best first), each with a percentile bootstrap interval of ``rounds`` resamples."""
    overall: dict[str, list[float]] = defaultdict(list)
    by_category: dict[tuple[str, str], list[float]] = defaultdict(list)
    for grade in grades:
        overall[grade.model].append(grade.score)
        if grade.category is not None:
            by_category[(grade.category, grade.model)].append(grade.score)
    models = sorted(
        (_mean(m, None, v, rounds, rng) for m, v in sorted(overall.items())), key=lambda s: -s.mean
    )
    categories = sorted(
        (_mean(m, c, v, rounds, rng) for (c, m), v in sorted(by_category.items())),
        key=lambda s: (s.category or "", -s.mean),
    )
    return [*models, *categories]
