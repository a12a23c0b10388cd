"""A summary's figures from observations: the statistics of ``app.stats`` put together. Pure."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np

from app.stats.batch import batch_stats
from app.stats.bootstrap import Interval
from app.stats.bradley_terry import bradley_terry
from app.stats.length_control import length_controlled_win_rates
from app.stats.records import baseline_of
from app.stats.scores import mean_scores
from app.stats.winrates import win_rates
from app.summaries.observations import Observations
from app.summaries.schemas import (
    IntervalOut,
    LengthControlledOut,
    RatingOut,
    ScoreOut,
    SummaryOut,
    VerdictFigures,
    WinRateOut,
)


def _interval(interval: Interval) -> IntervalOut:
    return IntervalOut(low=interval.low, high=interval.high)


def summarize(
    jobs: Sequence[uuid.UUID], seen: Observations, rounds: int, seed: int, baseline: str | None = None
) -> SummaryOut:
    """Every figure of the summary; ``baseline`` (default: inferred from the games) decides between
    length-controlled win rates (games against it) and Bradley–Terry ratings (every other run)."""
    rng = np.random.default_rng(seed)
    stats = batch_stats(seen.results)
    games = seen.games
    chosen = baseline if baseline is not None else baseline_of((g.model_a, g.model_b) for g in games)
    return SummaryOut(
        jobs=list(jobs),
        bootstrap_rounds=rounds,
        seed=seed,
        figures=VerdictFigures(
            items=stats.items,
            ok=stats.ok,
            errors=stats.errors,
            pending=stats.pending,
            verdicts=stats.verdicts,
            swapped=stats.swapped,
            consistent=stats.consistent,
            consistency_rate=stats.consistency_rate,
            judged_orders=stats.judged_orders,
            first_position_rate=stats.first_position_rate,
        ),
        baseline=chosen,
        win_rates=[
            WinRateOut(
                model=r.model,
                games=r.games,
                wins=r.wins,
                losses=r.losses,
                ties=r.ties,
                win_rate=r.win_rate,
                win_rate_interval=_interval(r.win_rate_interval),
                tie_adjusted_win_rate=r.tie_adjusted,
                tie_adjusted_interval=_interval(r.tie_adjusted_interval),
            )
            for r in win_rates(games, rounds, rng)
        ],
        scores=[
            ScoreOut(
                model=s.model, category=s.category, count=s.count, mean=s.mean, interval=_interval(s.interval)
            )
            for s in mean_scores(seen.grades, rounds, rng)
        ],
        ratings=[]
        if chosen is not None
        else [
            RatingOut(model=r.model, rating=r.rating, interval=_interval(r.interval))
            for r in bradley_terry(games, rounds, rng)
        ],
        length_controlled=[]
        if chosen is None
        else [
            LengthControlledOut(
                model=r.model,
                games=r.games,
                win_rate=r.win_rate,
                length_controlled_win_rate=r.length_controlled,
                length_weight=r.length_weight,
            )
            for r in length_controlled_win_rates(games, chosen)
        ],
    )
