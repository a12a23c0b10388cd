"""Every query about API keys and the dashboard sessions opened with them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import ApiKey, DashboardSession


def add(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()


def get(session: Session, key_id: uuid.UUID) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def list_keys(session: Session, tenant: str | None = None) -> list[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.created_at)
    if tenant is not None:
        stmt = stmt.where(ApiKey.tenant == tenant)
    return list(session.scalars(stmt))


def any_key(session: Session) -> bool:
    return session.scalars(select(ApiKey.id).limit(1)).first() is not None


def touch(session: Session, key_id: uuid.UUID) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


def add_session(session: Session, record: DashboardSession) -> DashboardSession:
    session.add(record)
    session.flush()
    return record


def live_session_key(session: Session, digest: str, now: datetime) -> ApiKey | None:
    """The key of the unexpired, unrevoked session ``digest``, while the key itself is not revoked."""
    return session.scalars(
        select(ApiKey)
        .join(DashboardSession, DashboardSession.key_id == ApiKey.id)
        .where(
            DashboardSession.digest == digest,
            DashboardSession.revoked_at.is_(None),
            DashboardSession.expires_at > now,
            ApiKey.revoked_at.is_(None),
        )
    ).one_or_none()


def revoke_sessions(
    session: Session, now: datetime, *, digest: str | None = None, key_id: uuid.UUID | None = None
) -> None:
    """End the session ``digest``, or every session of key ``key_id``."""
    stmt = update(DashboardSession).where(DashboardSession.revoked_at.is_(None)).values(revoked_at=now)
    if digest is not None:
        stmt = stmt.where(DashboardSession.digest == digest)
    if key_id is not None:
        stmt = stmt.where(DashboardSession.key_id == key_id)
    session.execute(stmt)
