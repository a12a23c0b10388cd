"""Win rates per model over pairwise games, with bootstrap intervals. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.stats.bootstrap import Interval, percentile_interval, resampled_counts
from app.stats.records import Game


@dataclass(frozen=True)
class WinRate:
    """A model's record over every game it played. ``win_rate`` counts wins only; ``tie_adjusted``
    counts each tie as half a win (FastChat's adjusted win rate)."""

    model: str
    wins: int
    losses: int
    ties: int
    win_rate: float
    win_rate_interval: Interval
    tie_adjusted: float
    tie_adjusted_interval: Interval

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.ties


def _record(model: str, outcomes: np.ndarray, rounds: int, rng: np.random.Generator) -> WinRate:
    # outcomes: (wins, losses, ties); resampling the model's games = a multinomial draw over the three.
    games = int(outcomes.sum())
    draws = resampled_counts(outcomes, rounds, rng)
    wins, ties = draws[:, 0] / games, draws[:, 2] / games
    win_rate = float(outcomes[0] / games)
    adjusted = float((outcomes[0] + 0.5 * outcomes[2]) / games)
    return WinRate(
        model=model,
        wins=int(outcomes[0]),
        losses=int(outcomes[1]),
        ties=int(outcomes[2]),
        win_rate=win_rate,
        win_rate_interval=percentile_interval(wins, win_rate),
        tie_adjusted=adjusted,
        tie_adjusted_interval=percentile_interval(wins + 0.5 * ties, adjusted),
    )


def win_rates(games: Sequence[Game], rounds: int, rng: np.random.Generator) -> list[WinRate]:
    """Each model's win rate and tie-adjusted win rate over its games, with percentile bootstrap
    intervals from ``rounds`` resamples of its games; best tie-adjusted rate first."""
    outcomes: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(3, dtype=np.int64))
    for game in games:
        for model in (game.model_a, game.model_b):
            points = game.points(model)
            outcomes[model][0 if points == 1 else 1 if points == 0 else 2] += 1
    rows = [_record(model, counts, rounds, rng) for model, counts in sorted(outcomes.items())]
    return sorted(rows, key=lambda r: (-r.tie_adjusted, r.model))
