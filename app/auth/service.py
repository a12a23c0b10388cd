"""Issuing, listing, revoking and checking API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from app.auth import keys
from app.auth import repository as keys_repo
from app.core.errors import ApiError
from app.db.base import utcnow
from app.db.tables import ApiKey

# last_used_at is informative: writing it on every request would make every read a write.
_TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's tenant and scopes."""

    key_id: uuid.UUID
    tenant: str
    scopes: frozenset[str]


class Unauthorized(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(401, "unauthorized", message)


class Forbidden(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, "forbidden", message)


def create_key(session: Session, tenant: str, scopes: Sequence[str], name: str = "") -> tuple[ApiKey, str]:
    """A new key for ``tenant``; returns the record and the token (shown once, never stored)."""
    unknown = sorted(set(scopes) - set(keys.SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(keys.SCOPES)} (got {', '.join(scopes) or 'none'})")
    if not tenant.strip():
        raise ValueError("tenant must not be empty")
    new = keys.make_key()
    record = keys_repo.add(
        session,
        ApiKey(tenant=tenant, name=name, prefix=new.prefix, digest=new.digest, scopes=sorted(set(scopes))),
    )
    return record, new.token


def revoke(session: Session, key_id: uuid.UUID) -> ApiKey | None:
    record = keys_repo.get(session, key_id)
    if record is not None and record.revoked_at is None:
        record.revoked_at = utcnow()
        keys_repo.revoke_sessions(session, record.revoked_at, key_id=record.id)
        session.flush()
    return record


def authenticate(session: Session, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization: Bearer <key>`` header; Unauthorized (401) otherwise."""
    if not authorization:
        raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <key>'")
    token = token.strip()
    prefix = keys.prefix_of(token)
    record = keys_repo.by_prefix(session, prefix) if prefix else None
    if record is None or not keys.matches(token, record.digest):
        raise Unauthorized("invalid API key")
    if record.revoked_at is not None:
        raise Unauthorized("this API key was revoked")
    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at > _TOUCH_EVERY:
        keys_repo.touch(session, record.id)
    return principal_of(record)


def principal_of(record: ApiKey) -> Principal:
    return Principal(record.id, record.tenant, frozenset(record.scopes))


def check_scope(principal: Principal, needed: tuple[str, ...]) -> None:
    if not keys.allows(principal.scopes, needed):
        wanted = " or ".join(f"'{s}'" for s in needed)
        raise Forbidden(f"this API key lacks the {wanted} scope")
