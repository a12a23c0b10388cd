"""Every query of self-reward jobs: the run checkpoint and each stage's rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db.tables import SrCandidate, SrIteration, SrJudgment, SrPair, SrPrompt, SrRun
from app.self_reward.stages import StageRow

STAGE_TABLES: dict[str, type[Any]] = {
    "prompts": SrPrompt,
    "candidates": SrCandidate,
    "judgments": SrJudgment,
    "pairs": SrPair,
}


def get_run(session: Session, job_id: uuid.UUID) -> SrRun | None:
    return session.get(SrRun, job_id)


def save_run(session: Session, job_id: uuid.UUID, step: str, state: dict[str, Any]) -> None:
    run = session.get(SrRun, job_id)
    if run is None:
        session.add(SrRun(job_id=job_id, step=step, state=state))
    else:
        run.step, run.state = step, state
    session.flush()


def replace_stage(
    session: Session, job_id: uuid.UUID, iteration: int, stage: str, rows: Sequence[StageRow]
) -> None:
    """Record a stage's rows in place of any it left before (an interrupted stage is redone from its
    start, its partial rows cleared)."""
    table = STAGE_TABLES[stage]
    session.execute(delete(table).where(table.job_id == job_id, table.iteration == iteration))
    session.add_all([table(job_id=job_id, iteration=iteration, **asdict(row)) for row in rows])
    session.flush()


def prompts(session: Session, job_id: uuid.UUID, iteration: int | None = None) -> list[SrPrompt]:
    stmt = select(SrPrompt).where(SrPrompt.job_id == job_id)
    if iteration is not None:
        stmt = stmt.where(SrPrompt.iteration == iteration)
    return list(session.scalars(stmt.order_by(SrPrompt.iteration, SrPrompt.index)))


def candidates(session: Session, job_id: uuid.UUID, iteration: int) -> list[SrCandidate]:
    stmt = (
        select(SrCandidate)
        .where(SrCandidate.job_id == job_id, SrCandidate.iteration == iteration)
        .order_by(SrCandidate.prompt_index, SrCandidate.index)
    )
    return list(session.scalars(stmt))


def judgments(session: Session, job_id: uuid.UUID, iteration: int) -> list[SrJudgment]:
    stmt = (
        select(SrJudgment)
        .where(SrJudgment.job_id == job_id, SrJudgment.iteration == iteration)
        .order_by(SrJudgment.prompt_index, SrJudgment.candidate_index, SrJudgment.sample)
    )
    return list(session.scalars(stmt))


def pairs(session: Session, job_id: uuid.UUID, iteration: int) -> list[SrPair]:
    stmt = (
        select(SrPair)
        .where(SrPair.job_id == job_id, SrPair.iteration == iteration)
        .order_by(SrPair.prompt_index)
    )
    return list(session.scalars(stmt))


def save_iteration(
    session: Session,
    job_id: uuid.UUID,
    iteration: int,
    *,
    metrics: dict[str, Any],
    flags: list[str] | None = None,
    model_id: uuid.UUID | None = None,
) -> SrIteration:
    """Create or update an iteration's record; metrics merge into what is there."""
    row = session.scalars(
        select(SrIteration).where(SrIteration.job_id == job_id, SrIteration.iteration == iteration)
    ).first()
    if row is None:
        row = SrIteration(job_id=job_id, iteration=iteration, metrics={}, flags=[])
        session.add(row)
    row.metrics = {**row.metrics, **metrics}
    if flags is not None:
        row.flags = list(flags)
    if model_id is not None:
        row.model_id = model_id
    session.flush()
    return row


def iterations(session: Session, job_id: uuid.UUID) -> list[SrIteration]:
    stmt = select(SrIteration).where(SrIteration.job_id == job_id).order_by(SrIteration.iteration)
    return list(session.scalars(stmt))
