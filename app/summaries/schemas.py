"""Response schemas of summaries (the API contract)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, Field

# A share: 0 to 1.
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class IntervalOut(BaseModel):
    low: float = Field(description="Lower end of the 95 % percentile bootstrap interval.")
    high: float = Field(description="Upper end of the 95 % percentile bootstrap interval.")


class VerdictFigures(BaseModel):
    items: int = Field(ge=0, description="Items summarized.")
    ok: int = Field(ge=0, description="Items judged without error.")
    errors: int = Field(ge=0, description="Items that ended in error.")
    pending: int = Field(ge=0, description="Items not judged yet.")
    verdicts: dict[str, int] = Field(description="Pairwise items per verdict (`A`, `B`, `tie`).")
    swapped: int = Field(ge=0, description="Items judged in both orders (`swap: conservative`).")
    consistent: int = Field(ge=0, description="Of `swapped`, the items whose two orders agreed.")
    consistency_rate: Rate | None = Field(
        default=None, description="`consistent / swapped` (null: no item judged in both orders)."
    )
    judged_orders: int = Field(ge=0, description="Pairwise orders with a verdict (ties included).")
    first_position_rate: Rate | None = Field(
        default=None,
        description="Share of `judged_orders` whose verdict picked the answer shown first; a judge "
        "without position bias that never says tie sits near 0.5.",
    )


class WinRateOut(BaseModel):
    model: str
    games: int = Field(ge=1, description="Pairwise items with a verdict that the model played.")
    wins: int = Field(ge=0)
    losses: int = Field(ge=0)
    ties: int = Field(ge=0)
    win_rate: Rate = Field(description="`wins / games`.")
    win_rate_interval: IntervalOut
    tie_adjusted_win_rate: Rate = Field(description="`(wins + ties / 2) / games`.")
    tie_adjusted_interval: IntervalOut


class ScoreOut(BaseModel):
    model: str
    category: str | None = Field(default=None, description="Null: the model's grades in every category.")
    count: int = Field(ge=1, description="Grades averaged.")
    mean: float = Field(description="Mean score.")
    interval: IntervalOut


class RatingOut(BaseModel):
    model: str
    rating: float = Field(
        description="Bradley–Terry rating on the Elo scale (Chatbot Arena's: scale 400, base 10, ratings "
        "averaging 1000)."
    )
    interval: IntervalOut


class LengthControlledOut(BaseModel):
    model: str
    games: int = Field(ge=1, description="Games against the baseline with a verdict.")
    win_rate: Rate = Field(description="Mean preference over the baseline (a tie counts half).")
    length_controlled_win_rate: Rate = Field(
        description="AlpacaEval 2's length-controlled win rate: the preference that its GLM (normalized "
        "length difference, instruction difficulty, model) predicts with no length difference, averaged "
        "over the model's instructions.",
    )
    length_weight: float = Field(
        description="The GLM's weight of `tanh(std_delta_len)` (baseline's length minus the model's): far "
        "from 0 when the judge prefers longer (or shorter) answers."
    )


class SummaryOut(BaseModel):
    jobs: list[uuid.UUID] = Field(description="The judging jobs summarized.")
    bootstrap_rounds: int = Field(ge=0, description="Bootstrap resamples behind every interval.")
    seed: int = Field(ge=0, description="Seed of the resampling: the same seed gives the same intervals.")
    figures: VerdictFigures
    baseline: str | None = Field(
        default=None,
        description="The model every game was played against (given, or the only `model_b` that is "
        "never a `model_a`); null when the games are not against one baseline.",
    )
    win_rates: list[WinRateOut] = Field(description="Per model, best tie-adjusted win rate first.")
    scores: list[ScoreOut] = Field(
        description="Grading: the mean score per model (best first), then per model within each category."
    )
    ratings: list[RatingOut] = Field(
        description="Games between every pair of models (no baseline): Bradley–Terry ratings, best first."
    )
    length_controlled: list[LengthControlledOut] = Field(
        description="Games against a baseline: each other model's length-controlled win rate, best first."
    )
    jury: JuryOut | None = Field(
        default=None,
        description="A jury job's summary (`judges`): inter-judge agreement and each judge's own figures.",
    )


class JudgeFiguresOut(BaseModel):
    model: str = Field(description="The judge model.")
    job_id: uuid.UUID = Field(description="The jury member job that ran this judge.")
    weight: float = Field(description="Its weight (`aggregate: weighted`; else 1).")
    ok: int = Field(ge=0, description="Items this judge judged without error.")
    consistency_rate: Rate | None = Field(
        default=None, description="This judge's share of items judged in both orders whose orders agreed."
    )
    first_position_rate: Rate | None = Field(
        default=None,
        description="Share of this judge's pairwise verdicts that picked the answer shown first.",
    )


class KappaOut(BaseModel):
    judge_a: str
    judge_b: str
    items: int = Field(ge=0, description="Items both judges rated.")
    kappa: float | None = Field(
        default=None, description="Cohen's kappa (null: undefined, e.g. both always gave one label)."
    )


class JuryOut(BaseModel):
    aggregate: str = Field(description="How the jury's verdicts combine (`majority`, `mean`, `weighted`).")
    ratings: str = Field(
        description="What the kappas compare: `verdicts` (A / B / tie, unweighted) or `scores` (each score "
        "rounded to a whole number; Cohen's kappa quadratic-weighted, Fleiss' kappa over the whole scores "
        "as categories)."
    )
    judges: list[JudgeFiguresOut] = Field(description="Each judge's own figures, in the request's order.")
    cohen_kappa: list[KappaOut] = Field(description="Cohen's kappa of every pair of judges.")
    fleiss_kappa: float | None = Field(
        default=None, description="Fleiss' kappa of all the judges over the items every judge rated."
    )
    fleiss_items: int = Field(ge=0, description="Items every judge rated.")
