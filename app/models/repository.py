"""Every query about registered models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

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


def get(session: Session, model_id: uuid.UUID) -> ModelRecord | None:
    return session.get(ModelRecord, model_id)


def resolve(session: Session, ref: str) -> ModelRecord | None:
    """A model by name, or by id (a registered model can be named either way)."""
    record = get_by_name(session, ref)
    if record is not None:
        return record
    try:
        model_id = uuid.UUID(ref)
    except ValueError:
        return None
    return get(session, model_id)


def ancestors(session: Session, record: ModelRecord, limit: int = 1000) -> list[ModelRecord]:
    """Parent, grandparent, ... up to the model nothing was trained from."""
    chain: list[ModelRecord] = []
    seen = {record.id}
    current = record
    while current.parent_id is not None and len(chain) < limit:
        parent = get(session, current.parent_id)
        if parent is None or parent.id in seen:
            break
        chain.append(parent)
        seen.add(parent.id)
        current = parent
    return chain


def root(session: Session, record: ModelRecord) -> ModelRecord:
    """The model at the top of ``record``'s lineage (``record`` itself when it has no parent)."""
    chain = ancestors(session, record)
    return chain[-1] if chain else record


def _shares_weights(record: ModelRecord) -> bool:
    """Whether ``record`` may share an engine with other names: an operator's model with a folder."""
    return record.parent_id is None and record.artifact_path is not None and record.backend != "openai"


def weights_owners(records: Sequence[ModelRecord]) -> dict[str, str]:
    """:func:`weights_owner`'s name for each of ``records``, from the records alone (pass the whole
    registry): one query for a list of models, not one per model."""
    first: dict[tuple[str, str | None], str] = {}
    for record in sorted(records, key=lambda r: (r.created_at, r.name)):
        if _shares_weights(record):
            first.setdefault((record.backend, record.artifact_path), record.name)
    return {
        r.name: first.get((r.backend, r.artifact_path), r.name) if _shares_weights(r) else r.name
        for r in records
    }


def weights_owner(session: Session, record: ModelRecord) -> ModelRecord:
    """The model whose engine serves ``record``'s weights: the first registered of the operator's
    models (no parent) with the same backend and the same folder (``record`` itself when it is the
    first, or has no folder of its own, or was trained). Names registered for the same folder (one per
    template, say) share one engine and one queue: the weights are loaded once and their calls batch
    together."""
    if not _shares_weights(record):
        return record
    first = session.scalars(
        select(ModelRecord)
        .where(
            ModelRecord.backend == record.backend,
            ModelRecord.artifact_path == record.artifact_path,
            ModelRecord.parent_id.is_(None),
        )
        .order_by(ModelRecord.created_at, ModelRecord.name)
        .limit(1)
    ).one_or_none()
    return first if first is not None else record


def serving_root(session: Session, record: ModelRecord) -> ModelRecord:
    """The model whose queue serves ``record``'s jobs: its lineage's root (whose workers load a trained
    descendant's weights when asked), or the root's :func:`weights_owner`."""
    return weights_owner(session, root(session, record))


def register_trained(
    session: Session,
    *,
    name: str,
    backend: str,
    artifact_path: str,
    parent_id: uuid.UUID,
    job_id: uuid.UUID,
    iteration: int,
    metrics: dict[str, Any],
    owner: str | None,
) -> ModelRecord:
    """Record a model a job produced (idempotent by name: a retried stage updates its record)."""
    record = get_by_name(session, name)
    if record is None:
        record = ModelRecord(name=name, backend=backend, metrics={})
        session.add(record)
    record.artifact_path = artifact_path
    record.parent_id = parent_id
    record.job_id = job_id
    record.iteration = iteration
    record.metrics = metrics
    record.owner = owner
    session.flush()
    return record


def children(session: Session, record: ModelRecord) -> list[ModelRecord]:
    stmt = (
        select(ModelRecord)
        .where(ModelRecord.parent_id == record.id)
        .order_by(ModelRecord.created_at, ModelRecord.name)
    )
    return list(session.scalars(stmt))
