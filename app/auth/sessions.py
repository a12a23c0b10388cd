"""Dashboard sessions: a browser that signed in with an API key holds a random session id instead of
the key. Only the id's SHA-256 is stored, linked to the key; a session ends when it expires, on
sign-out, and when its key is revoked."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from app.auth import keys
from app.auth import repository as keys_repo
from app.auth.service import Principal, principal_of
from app.db.base import utcnow
from app.db.tables import DashboardSession


def open_session(session: Session, caller: Principal, lifetime: timedelta) -> str:
    """A new session of ``caller``'s key; returns its id (for the browser's cookie; never stored)."""
    token = secrets.token_urlsafe(32)
    keys_repo.add_session(
        session,
        DashboardSession(digest=keys.digest(token), key_id=caller.key_id, expires_at=utcnow() + lifetime),
    )
    return token


def resolve(session: Session, token: str) -> Principal | None:
    """The principal of a live session (None: unknown, expired, signed out, or its key revoked)."""
    record = keys_repo.live_session_key(session, keys.digest(token), utcnow())
    return principal_of(record) if record is not None else None


def close(session: Session, token: str) -> None:
    """Sign out: the session id stops working at once."""
    keys_repo.revoke_sessions(session, utcnow(), digest=keys.digest(token))
