"""The dashboard's own queries about job rows: finding a job by the start of its id, the latest value of a
metadata key (the newest MT-Bench run)."""

from __future__ import annotations

import uuid

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from app.db.tables import Job


def ids_starting_with(
    session: Session, tenant: str, digits: str, kinds: tuple[str, ...], limit: int
) -> list[uuid.UUID]:
    """Ids of the tenant's jobs of ``kinds`` (not a jury's members) whose hex digits (dashes left out)
    start with ``digits`` (lowercase hex), newest first, at most ``limit``."""
    # Postgres spells a UUID with dashes, SQLite stores 32 hex digits: compare without the dashes.
    hex_id = func.replace(func.lower(cast(Job.id, String)), "-", "")
    stmt = (
        select(Job.id)
        .where(
            Job.tenant == tenant,
            Job.parent_id.is_(None),  # a jury's member jobs are shown through their jury
            Job.kind.in_(kinds),
            hex_id.startswith(digits, autoescape=True),
        )
        .order_by(Job.created_at.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def latest_metadata_value(session: Session, tenant: str, key: str) -> str | None:
    """The value under metadata ``key`` of the tenant's newest job that has one."""
    value = Job.job_metadata[key].as_string()
    stmt = (
        select(value)
        .where(Job.tenant == tenant, Job.parent_id.is_(None), value.is_not(None))
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
    )
    found = session.scalars(stmt).first()
    return str(found) if found is not None else None
