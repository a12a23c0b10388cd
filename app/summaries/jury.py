"""A jury's figures: each judge's consistency and first-position rates and the judges' agreement
(Cohen's kappa per pair, Fleiss' kappa overall). Pure."""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from app.jobs.schemas import ItemResult
from app.stats.agreement import panel_agreement
from app.stats.batch import batch_stats
from app.summaries.schemas import JudgeFiguresOut, JuryOut, KappaOut


@dataclass(frozen=True)
class JudgeRun:
    """One judge of a jury: its model, member job, weight and item results (by item index)."""

    model: str
    job_id: uuid.UUID
    weight: float
    results: dict[int, ItemResult]


def _rating(result: ItemResult | None, pairwise: bool) -> Hashable | None:
    if result is None or result.status != "ok":
        return None
    if pairwise:
        return result.verdict
    return round(result.score) if result.score is not None else None


def jury_figures(
    aggregate: str, pairwise: bool, indices: Sequence[int], judges: Sequence[JudgeRun]
) -> JuryOut:
    """The jury's figures over its items ``indices``."""
    ratings = [[_rating(j.results.get(i), pairwise) for i in indices] for j in judges]
    panel = panel_agreement(ratings, None if pairwise else "quadratic")
    figures = []
    for judge in judges:
        stats = batch_stats(list(judge.results.values()))
        figures.append(
            JudgeFiguresOut(
                model=judge.model,
                job_id=judge.job_id,
                weight=judge.weight,
                ok=stats.ok,
                consistency_rate=stats.consistency_rate,
                first_position_rate=stats.first_position_rate,
            )
        )
    return JuryOut(
        aggregate=aggregate,
        ratings="verdicts" if pairwise else "scores",
        judges=figures,
        cohen_kappa=[
            KappaOut(
                judge_a=judges[p.first].model, judge_b=judges[p.second].model, items=p.items, kappa=p.kappa
            )
            for p in panel.pairs
        ],
        fleiss_kappa=panel.fleiss,
        fleiss_items=panel.fleiss_items,
    )
