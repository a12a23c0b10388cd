"""Bradley–Terry ratings on the Elo scale, as Chatbot Arena computes them (FastChat's
``compute_mle_elo``): a logistic regression without intercept or penalty over the games, each model's
feature ``+ln(base)`` when it is ``model_a`` and ``-ln(base)`` when it is ``model_b``; a win counts as
two wins and a tie as one win for each side; ratings are ``scale * coefficient + init``. Intervals are
percentile intervals of refits on bootstrap resamples of the games. Pure."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from app.stats.bootstrap import Interval, percentile_interval, resampled_counts
from app.stats.records import Game

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
_OUTCOMES = {"A": 0, "B": 1, "tie": 2}


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float
    interval: Interval


def _design(pairs: list[tuple[int, int]], p: int) -> tuple[np.ndarray, np.ndarray]:
    """Two rows per pair (i, j) that met: model i ahead (label 1) and model j ahead (label 0)."""
    x = np.zeros((2 * len(pairs), p))
    for row, (i, j) in enumerate(pairs):
        x[2 * row : 2 * row + 2, i] = math.log(BASE)
        x[2 * row : 2 * row + 2, j] = -math.log(BASE)
    return x, np.tile([1.0, 0.0], len(pairs))


def _fit(model: LogisticRegression, x: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Ratings from the pairs' weighted rows (the same likelihood as FastChat's table of every game
    counted twice). A pair that did not meet in a resample weighs 0."""
    with warnings.catch_warnings():
        # One model winning every game has no finite rating: the solver stops at its iteration limit,
        # as FastChat's does.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, labels, sample_weight=weights)
    return SCALE * model.coef_[0] + INIT_RATING


def _weighted_wins(cells: np.ndarray, counts: np.ndarray, p: int) -> np.ndarray:
    """The wins table of games given as distinct (i, j, outcome) ``cells`` with ``counts``."""
    wins = np.zeros((p, p))
    i, j, outcome = cells[:, 0], cells[:, 1], cells[:, 2]
    np.add.at(wins, (i, j), counts * np.where(outcome == 0, 2.0, np.where(outcome == 2, 1.0, 0.0)))
    np.add.at(wins, (j, i), counts * np.where(outcome == 1, 2.0, np.where(outcome == 2, 1.0, 0.0)))
    return wins


def bradley_terry(games: Sequence[Game], rounds: int, rng: np.random.Generator) -> list[Rating]:
    """Each model's rating, best first, with a percentile interval over ``rounds`` bootstrap refits."""
    models = sorted({m for g in games for m in (g.model_a, g.model_b)})
    if len(models) < 2:
        return []
    index = {m: k for k, m in enumerate(models)}
    coded = np.array([(index[g.model_a], index[g.model_b], _OUTCOMES[g.winner]) for g in games])
    cells, counts = np.unique(coded, axis=0, return_counts=True)
    wins = _weighted_wins(cells, counts, len(models))
    pairs = [(i, j) for i in range(len(models)) for j in range(i + 1, len(models)) if wins[i, j] + wins[j, i]]
    x, labels = _design(pairs, len(models))

    def weights(table: np.ndarray) -> np.ndarray:
        return np.array([w for i, j in pairs for w in (table[i, j], table[j, i])])

    draws = resampled_counts(counts, rounds, rng)
    # C=inf: no penalty. Every row's features sum to 0, so the coefficients (from 0) sum to 0: the
    # ratings average INIT_RATING. Each refit starts from the point estimate (warm start).
    model = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-6, max_iter=1000, warm_start=True)
    # Fits this small are mostly overhead: input checks (the inputs are built here, finite) and threads.
    with threadpool_limits(1), config_context(assume_finite=True, skip_parameter_validation=True):
        ratings = _fit(model, x, labels, weights(wins))
        samples = [_fit(model, x, labels, weights(_weighted_wins(cells, d, len(models)))) for d in draws]
    spread = np.array(samples)
    rows = [
        Rating(
            model, float(ratings[k]), percentile_interval(spread[:, k] if spread.size else spread, ratings[k])
        )
        for k, model in enumerate(models)
    ]
    return sorted(rows, key=lambda r: (-r.rating, r.model))
