"""Bradley–Terry ratings against an independent computation of Chatbot Arena's method."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from app.stats.bradley_terry import BASE, INIT_RATING, SCALE, bradley_terry
from app.stats.records import Game, Winner

TRUE = {"alpha": 1150.0, "beta": 1050.0, "gamma": 1000.0, "delta": 800.0}


def _games(n: int, seed: int, ties: float = 0.1) -> list[Game]:
    """Games between random pairs whose winner follows the Elo-scale model, but for a share of ties."""
    rng = np.random.default_rng(seed)
    models = list(TRUE)
    out = []
    for _ in range(n):
        a, b = rng.choice(models, 2, replace=False)
        p_a = 1 / (1 + BASE ** ((TRUE[b] - TRUE[a]) / SCALE))
        u = rng.random()
        winner: Winner = "tie" if u < ties else "A" if u < ties + (1 - ties) * p_a else "B"
        out.append(Game(str(a), str(b), winner))
    return out


def _arena_reference(games: list[Game]) -> dict[str, float]:
    """FastChat's first ``compute_mle_elo`` formulation, battle by battle: every game twice, a win is a 1
    both times, a tie a 1 once and a 0 once; the same logistic likelihood maximized by scipy instead
    of scikit-learn."""
    models = sorted({m for g in games for m in (g.model_a, g.model_b)})
    index = {m: k for k, m in enumerate(models)}
    x = np.zeros((2 * len(games), len(models)))
    y = np.zeros(2 * len(games))
    for row, g in enumerate(games):
        for copy in (row, row + len(games)):
            x[copy, index[g.model_a]] = math.log(BASE)
            x[copy, index[g.model_b]] = -math.log(BASE)
        y[row] = 1.0 if g.winner in ("A", "tie") else 0.0
        y[row + len(games)] = 1.0 if g.winner == "A" else 0.0

    def loss(beta: np.ndarray) -> float:
        z = x @ beta
        return float(np.sum(np.logaddexp(0, z) - y * z))

    def grad(beta: np.ndarray) -> np.ndarray:
        return np.asarray(x.T @ (1 / (1 + np.exp(-(x @ beta))) - y))

    beta = minimize(loss, np.zeros(len(models)), jac=grad, method="BFGS", options={"gtol": 1e-10}).x
    beta -= beta.mean()  # the likelihood fixes ratings up to a shift; ours average INIT_RATING
    return {m: SCALE * beta[k] + INIT_RATING for m, k in index.items()}


def test_ratings_match_an_independent_fit_of_the_arena_formulation() -> None:
    games = _games(600, seed=3)
    ours = {r.model: r.rating for r in bradley_terry(games, rounds=0, rng=np.random.default_rng(0))}
    reference = _arena_reference(games)
    assert ours.keys() == reference.keys()
    for model, rating in reference.items():
        assert ours[model] == pytest.approx(rating, abs=0.05)
    assert sum(ours.values()) / len(ours) == pytest.approx(INIT_RATING, abs=1e-3)


def test_ratings_recover_the_simulated_strengths_within_their_intervals() -> None:
    games = _games(3000, seed=5, ties=0.0)  # ties pull every rating toward the mean
    ratings = bradley_terry(games, rounds=200, rng=np.random.default_rng(0))
    assert [r.model for r in ratings] == ["alpha", "beta", "gamma", "delta"]
    shift = np.mean(list(TRUE.values())) - INIT_RATING
    covered = [r.interval.low <= TRUE[r.model] - shift <= r.interval.high for r in ratings]
    assert sum(covered) >= 3  # 95 % intervals: one miss in four is possible, two are not expected
    assert all(r.interval.low < r.rating < r.interval.high for r in ratings)


def test_the_same_seed_gives_the_same_intervals() -> None:
    games = _games(300, seed=1)
    first = bradley_terry(games, rounds=50, rng=np.random.default_rng(7))
    again = bradley_terry(games, rounds=50, rng=np.random.default_rng(7))
    assert first == again


def test_one_model_has_no_rating() -> None:
    assert bradley_terry([Game("a", "a", "tie")], rounds=10, rng=np.random.default_rng(0)) == []
