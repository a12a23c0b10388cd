"""Every query about webhook deliveries (the outbox of job-end callbacks)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import WebhookDelivery, WebhookDeliveryAttempt


def add(session: Session, *, job_id: uuid.UUID, url: str, payload: dict[str, Any]) -> WebhookDelivery:
    delivery = WebhookDelivery(job_id=job_id, url=url, payload=payload, status="pending")
    session.add(delivery)
    session.flush()
    return delivery


def for_job(session: Session, job_id: uuid.UUID) -> WebhookDelivery | None:
    return session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).one_or_none()


def claim_due(session: Session, now: datetime, hold_until: datetime, limit: int) -> list[WebhookDelivery]:
    """Take up to ``limit`` pending deliveries that are due: each is held (not due again) until
    ``hold_until`` and its attempt counted, so no other deliverer sends it meanwhile.

    ``FOR UPDATE SKIP LOCKED`` lets concurrent deliverers pass over each other's rows instead of
    waiting; the conditional update makes the claim safe where row locks do not exist (SQLite).
    """
    due = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = []
    for delivery in due:
        result = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.attempts == delivery.attempts,
            )
            .values(attempts=delivery.attempts + 1, next_attempt_at=hold_until, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            session.refresh(delivery)
            claimed.append(delivery)
    return claimed


def record_attempt(
    session: Session,
    delivery_id: uuid.UUID,
    attempt: int,
    *,
    status: str,
    next_attempt_at: datetime | None = None,
    status_code: int | None = None,
    error: str | None = None,
) -> bool:
    """Record how attempt ``attempt`` went: ``delivered``, ``pending`` again (due at ``next_attempt_at``)
    or ``failed`` (given up). False when the row has moved on (another deliverer re-claimed it after
    this attempt's hold ran out): the newer attempt's record stands."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "last_status_code": status_code,
        "last_error": error,
        "updated_at": now,
    }
    if status == "delivered":
        values["delivered_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.attempts == attempt,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_attempt(
    session: Session,
    delivery_id: uuid.UUID,
    attempt: int,
    *,
    attempted_at: datetime,
    duration_ms: float,
    outcome: str,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
) -> None:
    """Keep one POST of a delivery: when, how long, what came back and what follows (``delivered``,
    ``retrying`` at ``next_attempt_at``, or ``failed``: given up)."""
    session.add(
        WebhookDeliveryAttempt(
            delivery_id=delivery_id,
            attempt=attempt,
            attempted_at=attempted_at,
            duration_ms=duration_ms,
            outcome=outcome,
            status_code=status_code,
            error=error,
            next_attempt_at=next_attempt_at,
        )
    )


def attempts_of(session: Session, delivery_id: uuid.UUID) -> list[WebhookDeliveryAttempt]:
    """The delivery's attempts, first first."""
    stmt = (
        select(WebhookDeliveryAttempt)
        .where(WebhookDeliveryAttempt.delivery_id == delivery_id)
        .order_by(WebhookDeliveryAttempt.attempt)
    )
    return list(session.scalars(stmt))
