"""Typed summaries of judging jobs (``GET /v1/jobs/{id}/summary``, ``GET /v1/summary``): rates, scores
and ratings with their 95 % bootstrap intervals. Rates are shares from 0 to 1."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Interval(_Response):
    low: float
    high: float


class VerdictFigures(_Response):
    items: int = 0
    ok: int = 0
    errors: int = 0
    pending: int = 0
    verdicts: dict[str, int] = Field(default_factory=dict)
    swapped: int = 0
    consistent: int = 0
    consistency_rate: float | None = None
    judged_orders: int = 0
    first_position_rate: float | None = None


class WinRate(_Response):
    model: str
    games: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    win_rate_interval: Interval
    tie_adjusted_win_rate: float
    tie_adjusted_interval: Interval


class Score(_Response):
    model: str
    category: str | None = None  # None: every category
    count: int
    mean: float
    interval: Interval


class Rating(_Response):
    model: str
    rating: float  # Bradley–Terry, Elo scale
    interval: Interval


class LengthControlled(_Response):
    model: str
    games: int
    win_rate: float
    length_controlled_win_rate: float
    length_weight: float


class JudgeFigures(_Response):
    model: str
    job_id: str
    weight: float = 1.0
    ok: int = 0
    consistency_rate: float | None = None
    first_position_rate: float | None = None


class Kappa(_Response):
    judge_a: str
    judge_b: str
    items: int
    kappa: float | None = None


class JuryFigures(_Response):
    """A jury's agreement: Cohen's kappa per pair of judges, Fleiss' kappa overall, each judge's rates."""

    aggregate: str
    ratings: str
    judges: list[JudgeFigures] = Field(default_factory=list)
    cohen_kappa: list[Kappa] = Field(default_factory=list)
    fleiss_kappa: float | None = None
    fleiss_items: int = 0


class Summary(_Response):
    jobs: list[str]
    bootstrap_rounds: int
    seed: int
    figures: VerdictFigures
    baseline: str | None = None
    win_rates: list[WinRate] = Field(default_factory=list)
    scores: list[Score] = Field(default_factory=list)
    ratings: list[Rating] = Field(default_factory=list)
    length_controlled: list[LengthControlled] = Field(default_factory=list)
    jury: JuryFigures | None = None  # a jury job's (``judges=``)
