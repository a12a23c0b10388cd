"""Every query about job rows (shared by all job kinds)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import Job

TERMINAL = ("succeeded", "failed", "cancelled")


def create_job(
    session: Session, *, kind: str, model: str, queue: str, params: dict[str, Any], total: int, tenant: str
) -> Job:
    job = Job(
        kind=kind,
        model=model,
        queue=queue,
        params=params,
        progress_total=total,
        tenant=tenant,
        status="queued",
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: uuid.UUID, tenant: str | None = None) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    if tenant is not None:
        stmt = stmt.where(Job.tenant == tenant)
    return session.scalars(stmt).one_or_none()


def list_jobs(
    session: Session,
    *,
    tenant: str,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    status: str | None = None,
    kind: str | None = None,
    model: str | None = None,
) -> list[Job]:
    """Newest first; ``after`` is the (created_at, id) of the last job of the previous page."""
    stmt = select(Job).where(Job.tenant == tenant)
    if status:
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if model:
        stmt = stmt.where(Job.model == model)
    if after is not None:
        created, last_id = after
        stmt = stmt.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < last_id)))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def claim(session: Session, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> Job | None:
    """Take the job for this worker if it is queued, or running under an expired lease.

    A single conditional UPDATE, so two workers can never both hold the job.
    """
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.cancel_requested.is_(False),
            or_(Job.status == "queued", and_(Job.status == "running", Job.lease_expires_at < now)),
        )
        .values(
            status="running",
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.expire_all()
    return get_job(session, job_id)


def heartbeat(session: Session, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
    """Extend the lease; False when this worker no longer holds the job."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == "running")
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_progress(
    session: Session, job_id: uuid.UUID, done: int, stage: str | None, total: int | None = None
) -> None:
    values: dict[str, Any] = {"progress_done": done, "stage": stage, "updated_at": utcnow()}
    if total is not None:
        values["progress_total"] = total
    session.execute(update(Job).where(Job.id == job_id).values(**values))


def set_detail(session: Session, job_id: uuid.UUID, detail: dict[str, Any]) -> None:
    """Kind-specific live figures shown on the job (e.g. budget spent)."""
    session.execute(update(Job).where(Job.id == job_id).values(detail=detail))


def cancel_requested_among(session: Session, job_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these jobs a client asked to cancel (one query for a worker's whole batch)."""
    stmt = select(Job.id).where(Job.id.in_(job_ids), Job.cancel_requested.is_(True))
    return set(session.scalars(stmt))


def is_cancel_requested(session: Session, job_id: uuid.UUID) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(session: Session, job_id: uuid.UUID, status: str, error: str | None = None) -> None:
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=status,
            error=error,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


def release(session: Session, job_id: uuid.UUID, error: str | None) -> None:
    """Send a running job back to the queue (a retryable failure or a shutdown)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running")
        .values(
            status="queued",
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )
    )


def request_cancel(session: Session, job: Job) -> None:
    """Queued jobs end at once; running ones stop at the worker's next check."""
    job.cancel_requested = True
    if job.status == "queued":
        job.status = "cancelled"
        job.finished_at = utcnow()
    session.flush()


def expired_running(session: Session, limit: int = 100) -> list[Job]:
    stmt = (
        select(Job)
        .where(Job.status == "running", Job.lease_expires_at < utcnow())
        .order_by(Job.lease_expires_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def stale_queued(session: Session, older_than: timedelta, queues: list[str], limit: int = 100) -> list[Job]:
    """Queued jobs untouched for a while: candidates for re-delivery if RQ no longer holds them."""
    stmt = (
        select(Job)
        .where(Job.status == "queued", Job.updated_at < utcnow() - older_than, Job.queue.in_(queues))
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def queued_candidates(session: Session, queue: str, kinds: tuple[str, ...], limit: int) -> list[Job]:
    """The oldest queued jobs of these kinds on a queue (for a worker fusing jobs into one batch)."""
    stmt = (
        select(Job)
        .where(
            Job.queue == queue, Job.status == "queued", Job.kind.in_(kinds), Job.cancel_requested.is_(False)
        )
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def count_active(session: Session, tenant: str) -> int:
    """The tenant's queued and running jobs."""
    stmt = (
        select(func.count())
        .select_from(Job)
        .where(Job.tenant == tenant, Job.status.in_(("queued", "running")))
    )
    return int(session.scalar(stmt) or 0)
