"""Every query of prompt-optimization jobs: the prediction cache, the run checkpoint, candidates and
rounds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db.tables import PoCandidate, PoRound, PoRun, PredictionCache


@dataclass(frozen=True)
class CachedOutput:
    raw: str
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True)
class CacheEntry:
    key: str
    tenant: str | None
    model: str
    prompt_hash: str
    example_hash: str | None
    decoding: dict[str, Any]
    raw: str
    tokens_in: int
    tokens_out: int


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def cached_outputs(session: Session, keys: Sequence[str]) -> dict[str, CachedOutput]:
    found: dict[str, CachedOutput] = {}
    for start in range(0, len(keys), 1000):
        chunk = list(keys[start : start + 1000])
        rows = session.execute(
            select(
                PredictionCache.key,
                PredictionCache.raw,
                PredictionCache.tokens_in,
                PredictionCache.tokens_out,
            ).where(PredictionCache.key.in_(chunk))
        )
        for key, raw, tokens_in, tokens_out in rows:
            found[key] = CachedOutput(raw, tokens_in, tokens_out)
    return found


def store_outputs(session: Session, entries: Sequence[CacheEntry]) -> None:
    """Insert outputs; a key another worker stored meanwhile keeps its first value."""
    if not entries:
        return
    values = [entry.__dict__ for entry in entries]
    stmt = _insert(session, PredictionCache).values(values).on_conflict_do_nothing(index_elements=["key"])
    session.execute(stmt)


def get_run(session: Session, job_id: uuid.UUID) -> PoRun | None:
    return session.get(PoRun, job_id)


def save_run(session: Session, job_id: uuid.UUID, step: str, state: dict[str, Any]) -> None:
    run = session.get(PoRun, job_id)
    if run is None:
        session.add(PoRun(job_id=job_id, step=step, state=state))
    else:
        run.step, run.state = step, state
    session.flush()


def save_usage(session: Session, job_id: uuid.UUID, calls: int, tokens: int, cache_hits: int) -> None:
    run = session.get(PoRun, job_id)
    if run is None:
        session.add(
            PoRun(job_id=job_id, step="start", state={}, calls=calls, tokens=tokens, cache_hits=cache_hits)
        )
    else:
        run.calls, run.tokens, run.cache_hits = calls, tokens, cache_hits
    session.flush()


def upsert_candidates(session: Session, job_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or update candidates by key; ``None`` values leave a column as it is."""
    if not rows:
        return
    keys = [row["key"] for row in rows]
    existing = {
        c.key: c
        for c in session.scalars(
            select(PoCandidate).where(PoCandidate.job_id == job_id, PoCandidate.key.in_(keys))
        )
    }
    for row in rows:
        current = existing.get(row["key"])
        if current is None:
            current = PoCandidate(job_id=job_id, **row)
            session.add(current)
            existing[row["key"]] = current
            continue
        for name, value in row.items():
            if value is not None:
                setattr(current, name, value)
    session.flush()


def save_round(session: Session, job_id: uuid.UUID, values: dict[str, Any]) -> None:
    row = session.scalars(
        select(PoRound).where(PoRound.job_id == job_id, PoRound.round == values["round"])
    ).first()
    if row is None:
        session.add(PoRound(job_id=job_id, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.flush()


def candidates(session: Session, job_id: uuid.UUID) -> list[PoCandidate]:
    stmt = select(PoCandidate).where(PoCandidate.job_id == job_id).order_by(PoCandidate.round, PoCandidate.id)
    return list(session.scalars(stmt))


def rounds(session: Session, job_id: uuid.UUID) -> list[PoRound]:
    return list(session.scalars(select(PoRound).where(PoRound.job_id == job_id).order_by(PoRound.round)))
