"""Dataset behaviour: check and record uploads, read, page, delete. Never commits."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.cursors import decode_cursor, decode_index_cursor, encode_cursor
from app.core.errors import InvalidInput, NotFound
from app.core.idempotency import Idempotency
from app.datasets import repository
from app.datasets.schemas import DatasetOut, DatasetPage, DatasetRowOut, DatasetRowPage
from app.datasets.upload import Upload
from app.db.tables import Dataset


def dataset_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut(
        id=dataset.id,
        name=dataset.name,
        description=dataset.description,
        row_count=dataset.row_count,
        fields=list(dataset.fields),
        label_counts=dict(dataset.label_counts),
        created_at=dataset.created_at,
    )


def create_dataset(
    session: Session, tenant: str, upload: Upload, max_rows: int, idem: Idempotency | None = None
) -> Dataset:
    """Check the rows as a whole (size, one set of input fields) and record the dataset (or, for a retry
    with the same Idempotency-Key, return the one the first request recorded: a 404 if it was deleted)."""
    replayed = idempotency.replay_resource(
        session, tenant, idem, lambda id_: repository.get_dataset(session, id_, tenant), "dataset"
    )
    if replayed is not None:
        return replayed
    body = upload.dataset
    if len(body.rows) > max_rows:
        raise upload.problem(None, f"too many rows: {len(body.rows)} given, at most {max_rows} per dataset")
    fields = list(body.rows[0].inputs)
    expected = set(fields)
    for index, row in enumerate(body.rows):
        got = set(row.inputs)
        if got != expected:
            missing, extra = sorted(expected - got), sorted(got - expected)
            detail = "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unexpected {', '.join(extra)}" if extra else "",
                )
                if part
            )
            raise upload.problem(
                index, f"every row must have the first row's input fields ({', '.join(fields)}): {detail}"
            )
    labels = Counter(row.label for row in body.rows)
    dataset = repository.create_dataset(
        session,
        tenant=tenant,
        name=body.name,
        description=body.description,
        fields=fields,
        label_counts=dict(sorted(labels.items())),
        rows=[(row.inputs, row.label) for row in body.rows],
    )
    idempotency.remember(session, tenant, idem, dataset.id)
    return dataset


def get_dataset(session: Session, dataset_id: uuid.UUID, tenant: str) -> Dataset:
    dataset = repository.get_dataset(session, dataset_id, tenant)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}")
    return dataset


def list_datasets(session: Session, tenant: str, limit: int, cursor: str | None) -> DatasetPage:
    after = None
    if cursor:
        parts = decode_cursor(cursor)
        try:
            after = (datetime.fromisoformat(str(parts[0])), uuid.UUID(str(parts[1])))
        except (IndexError, ValueError) as exc:
            raise InvalidInput("malformed cursor", "cursor") from exc
    datasets = repository.list_datasets(session, tenant=tenant, limit=limit + 1, after=after)
    next_cursor = None
    if len(datasets) > limit:
        datasets = datasets[:limit]
        last = datasets[-1]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)])
    return DatasetPage(datasets=[dataset_out(d) for d in datasets], next_cursor=next_cursor)


def rows_page(
    session: Session, dataset_id: uuid.UUID, tenant: str, limit: int, cursor: str | None
) -> DatasetRowPage:
    dataset = get_dataset(session, dataset_id, tenant)
    after = decode_index_cursor(cursor) if cursor else -1
    rows = repository.rows_page(session, dataset.id, after, limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1].index])
    return DatasetRowPage(
        dataset_id=dataset.id,
        rows=[DatasetRowOut(index=r.index, inputs=dict(r.inputs), label=r.label) for r in rows],
        next_cursor=next_cursor,
    )


def delete_dataset(session: Session, dataset_id: uuid.UUID, tenant: str) -> None:
    repository.delete_dataset(session, get_dataset(session, dataset_id, tenant))
