"""Win rates and mean scores with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from app.stats.bootstrap import resampled_means
from app.stats.records import Game, Grade, baseline_of
from app.stats.scores import mean_scores
from app.stats.winrates import win_rates


def test_win_rates_count_each_side_of_every_game() -> None:
    games = [Game("x", "y", "A")] * 6 + [Game("y", "x", "A")] * 2 + [Game("x", "y", "tie")] * 2
    rows = {r.model: r for r in win_rates(games, rounds=500, rng=np.random.default_rng(0))}
    x, y = rows["x"], rows["y"]
    assert (x.wins, x.losses, x.ties, x.games) == (6, 2, 2, 10)
    assert (y.wins, y.losses, y.ties) == (2, 6, 2)
    assert x.win_rate == 0.6 and x.tie_adjusted == 0.7
    assert y.tie_adjusted == pytest.approx(0.3)
    assert x.win_rate_interval.low < 0.6 < x.win_rate_interval.high
    assert 0.0 <= x.tie_adjusted_interval.low < 0.7 < x.tie_adjusted_interval.high <= 1.0
    assert [r.model for r in win_rates(games, 0, np.random.default_rng(0))] == ["x", "y"]


def test_no_rounds_gives_point_intervals() -> None:
    (row,) = [r for r in win_rates([Game("x", "y", "B")], 0, np.random.default_rng(0)) if r.model == "y"]
    assert (row.win_rate_interval.low, row.win_rate_interval.high) == (1.0, 1.0)


def test_resampled_means_match_resampling_one_by_one() -> None:
    """The multinomial shortcut has the spread of the textbook bootstrap of the mean."""
    values = np.random.default_rng(1).integers(1, 11, 80).astype(float)
    means = resampled_means(list(values), 4000, np.random.default_rng(2))
    assert means.mean() == pytest.approx(values.mean(), abs=0.02)
    assert means.std() == pytest.approx(values.std() / np.sqrt(len(values)), rel=0.06)


def test_mean_scores_per_model_then_per_category() -> None:
    grades = [Grade("m", 8, "math"), Grade("m", 6, "math"), Grade("m", 10, "writing"), Grade("n", 3, None)]
    rows = mean_scores(grades, rounds=200, rng=np.random.default_rng(0))
    assert [(r.model, r.category, r.count, r.mean) for r in rows] == [
        ("m", None, 3, 8.0),
        ("n", None, 1, 3.0),
        ("m", "math", 2, 7.0),
        ("m", "writing", 1, 10.0),
    ]
    assert 6 <= rows[0].interval.low <= 8 <= rows[0].interval.high <= 10


def test_baseline_is_the_one_second_model_never_first() -> None:
    assert baseline_of([("a", "base"), ("b", "base")]) == "base"
    assert baseline_of([("a", "b"), ("a", "c"), ("b", "c")]) is None
    assert baseline_of([]) is None
