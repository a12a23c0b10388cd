"""``Idempotency-Key`` on the POSTs that create work: a retry with the same key and body returns what
the first request created (a 404 when that was deleted since); the same key with another body is a 409."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Header
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import Conflict, NotFound
from app.db.tables import IdempotencyKey

HEADER = Header(
    default=None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=255,
    description="Makes a retry safe: the same key with the same body returns the work the first request "
    "created (nothing is created twice); the same key with another body is a 409.",
)


T = TypeVar("T")


@dataclass(frozen=True)
class Idempotency:
    key: str
    route: str
    request_hash: str


def of(key: str | None, route: str, body: BaseModel, **extra: object) -> Idempotency | None:
    """The idempotency of a request (None without the header): its key and a digest of what it asks."""
    if key is None:
        return None
    payload = json.dumps([body.model_dump(mode="json"), extra], sort_keys=True, ensure_ascii=False)
    return Idempotency(key, route, hashlib.sha256(payload.encode()).hexdigest())


def replay(session: Session, tenant: str, idem: Idempotency | None) -> uuid.UUID | None:
    """What an earlier request with this key created, or None when the key is new.

    Raises Conflict (409) when the key came with another request.
    """
    if idem is None:
        return None
    row = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.tenant == tenant, IdempotencyKey.key == idem.key)
    ).first()
    if row is None:
        return None
    if row.route != idem.route or row.request_hash != idem.request_hash:
        raise Conflict(
            f"Idempotency-Key '{idem.key}' was already used with a different request ({row.route}); "
            "use a new key for a new request"
        )
    return row.resource_id


def replay_resource(
    session: Session,
    tenant: str,
    idem: Idempotency | None,
    load: Callable[[uuid.UUID], T | None],
    noun: str,
) -> T | None:
    """What an earlier request with this key created (read by ``load``), or None when the key is new.

    Conflict (409) when the key came with another request; NotFound (404) when what it created was
    deleted since: a retry never re-creates what its client deleted, and the key stays spent.
    """
    earlier = replay(session, tenant, idem)
    if earlier is None:
        return None
    found = load(earlier)
    if found is None:
        assert idem is not None
        raise NotFound(
            f"the {noun} that Idempotency-Key '{idem.key}' created ({earlier}) was deleted; "
            "use a new key to create another"
        )
    return found


def remember(session: Session, tenant: str, idem: Idempotency | None, resource_id: uuid.UUID) -> None:
    """Record what this request created, in its transaction (so a rolled-back request records nothing).

    Raises Conflict when a concurrent request with the same key got there first: retrying then
    returns that request's result.
    """
    if idem is None:
        return
    try:
        with session.begin_nested():
            session.add(
                IdempotencyKey(
                    tenant=tenant,
                    key=idem.key,
                    route=idem.route,
                    request_hash=idem.request_hash,
                    resource_id=resource_id,
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"a request with Idempotency-Key '{idem.key}' is in progress; retry it") from exc
