"""Every query about datasets and their rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.orm import Session

from app.db.tables import Dataset, DatasetRow


def create_dataset(
    session: Session,
    *,
    tenant: str,
    name: str,
    description: str,
    fields: list[str],
    label_counts: dict[str, int],
    rows: list[tuple[dict[str, str], str]],
) -> Dataset:
    """Record a dataset and its rows (``(inputs, label)`` in index order)."""
    dataset = Dataset(
        tenant=tenant,
        name=name,
        description=description,
        row_count=len(rows),
        fields=fields,
        label_counts=label_counts,
    )
    session.add(dataset)
    session.flush()
    values: list[dict[str, Any]] = [
        {"dataset_id": dataset.id, "index": i, "inputs": inputs, "label": label}
        for i, (inputs, label) in enumerate(rows)
    ]
    # One executemany, not one ORM object per row: uploads run to 100k rows.
    session.execute(insert(DatasetRow), values)
    return dataset


def get_dataset(session: Session, dataset_id: uuid.UUID, tenant: str | None = None) -> Dataset | None:
    """The dataset, or None; with ``tenant``, only that tenant's (the worker passes none)."""
    stmt = select(Dataset).where(Dataset.id == dataset_id)
    if tenant is not None:
        stmt = stmt.where(Dataset.tenant == tenant)
    return session.scalars(stmt).one_or_none()


def list_datasets(
    session: Session, *, tenant: str, limit: int, after: tuple[datetime, uuid.UUID] | None = None
) -> list[Dataset]:
    """Newest first; ``after`` is the (created_at, id) of the last dataset of the previous page."""
    stmt = select(Dataset).where(Dataset.tenant == tenant)
    if after is not None:
        created, last_id = after
        stmt = stmt.where(
            or_(Dataset.created_at < created, and_(Dataset.created_at == created, Dataset.id < last_id))
        )
    stmt = stmt.order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def rows(session: Session, dataset_id: uuid.UUID) -> list[DatasetRow]:
    """Every row of the dataset, in index order."""
    stmt = select(DatasetRow).where(DatasetRow.dataset_id == dataset_id).order_by(DatasetRow.index)
    return list(session.scalars(stmt))


def rows_page(session: Session, dataset_id: uuid.UUID, after: int, limit: int) -> list[DatasetRow]:
    """Rows with index greater than ``after``, in index order."""
    stmt = (
        select(DatasetRow)
        .where(DatasetRow.dataset_id == dataset_id, DatasetRow.index > after)
        .order_by(DatasetRow.index)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def delete_dataset(session: Session, dataset: Dataset) -> None:
    # Rows first, explicitly: not every connection (SQLite without its pragma) applies the cascade.
    session.execute(delete(DatasetRow).where(DatasetRow.dataset_id == dataset.id))
    session.delete(dataset)
    session.flush()
