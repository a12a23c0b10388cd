"""Every query about registered models."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import ModelRecord


def get_by_name(session: Session, name: str) -> ModelRecord | None:
    return session.scalars(select(ModelRecord).where(ModelRecord.name == name)).one_or_none()


def list_models(session: Session) -> list[ModelRecord]:
    return list(session.scalars(select(ModelRecord).order_by(ModelRecord.created_at, ModelRecord.name)))


def upsert(session: Session, name: str, backend: str, artifact_path: str | None) -> ModelRecord:
    record = get_by_name(session, name)
    if record is None:
        record = ModelRecord(name=name, backend=backend, artifact_path=artifact_path, metrics={})
        session.add(record)
    else:
        record.backend = backend
        record.artifact_path = artifact_path
    session.flush()
    return record
