"""Every query about job rows (shared by all job kinds)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import Job

TERMINAL = ("succeeded", "failed", "cancelled")


def create_job(
    session: Session,
    *,
    kind: str,
    model: str,
    queue: str,
    params: dict[str, Any],
    total: int,
    tenant: str,
    metadata: dict[str, str] | None = None,
    callback_url: str | None = None,
    job_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
) -> Job:
    """Add a queued job (with ``job_id`` if given, else a new id; ``parent_id``: a member of that job)."""
    job = Job(
        kind=kind,
        model=model,
        queue=queue,
        params=params,
        progress_total=total,
        tenant=tenant,
        status="queued",
        job_metadata=metadata,
        callback_url=callback_url,
        parent_id=parent_id,
    )
    if job_id is not None:
        job.id = job_id
    session.add(job)
    session.flush()
    return job


def kind_of(session: Session, job_id: uuid.UUID, tenant: str) -> str | None:
    """The kind of the tenant's job ``job_id`` (None: it has no such job)."""
    return session.scalars(select(Job.kind).where(Job.id == job_id, Job.tenant == tenant)).one_or_none()


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
    metadata: dict[str, str] | None = None,
    kinds: tuple[str, ...] | None = None,
) -> list[Job]:
    """Newest first; ``after`` is the (created_at, id) of the last job of the previous page;
    ``metadata``: only jobs whose metadata holds every one of these keys with these values; ``kinds``:
    only jobs of these kinds. Member jobs (a jury's judges) are left out: their jury is the caller's job."""
    stmt = select(Job).where(Job.tenant == tenant, Job.parent_id.is_(None))
    if kinds is not None:
        stmt = stmt.where(Job.kind.in_(kinds))
    for key, value in (metadata or {}).items():
        stmt = stmt.where(Job.job_metadata[key].as_string() == value)
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


def members(session: Session, parent_id: uuid.UUID) -> list[Job]:
    """The member jobs of ``parent_id`` (a jury's judges), in the order they were recorded."""
    stmt = (
        select(Job)
        .where(Job.parent_id == parent_id)
        .order_by(Job.created_at, Job.id)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(stmt))


def lock_job(session: Session, job_id: uuid.UUID) -> Job | None:
    """The job as committed now, its row locked until the transaction ends (Postgres; SQLite has one
    writer anyway)."""
    session.flush()
    stmt = select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


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
    session: Session,
    job_id: uuid.UUID,
    done: int,
    stage: str | None,
    total: int | None = None,
    failed: int | None = None,
) -> None:
    values: dict[str, Any] = {"progress_done": done, "stage": stage, "updated_at": utcnow()}
    if total is not None:
        values["progress_total"] = total
    if failed is not None:
        values["progress_failed"] = failed
    session.execute(update(Job).where(Job.id == job_id).values(**values))


def progress_of(session: Session, job_id: uuid.UUID) -> tuple[int, int, str | None, uuid.UUID | None] | None:
    """The job's (done, total, stage, parent job id), or None when there is no such job."""
    row = session.execute(
        select(Job.progress_done, Job.progress_total, Job.stage, Job.parent_id).where(Job.id == job_id)
    ).one_or_none()
    return (row[0], row[1], row[2], row[3]) if row is not None else None


def set_detail(session: Session, job_id: uuid.UUID, detail: dict[str, Any]) -> None:
    """Kind-specific live figures shown on the job (e.g. budget spent)."""
    session.execute(update(Job).where(Job.id == job_id).values(detail=detail))


def cancel_requested_among(session: Session, job_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these jobs a client asked to cancel (one query for a worker's whole batch)."""
    stmt = select(Job.id).where(Job.id.in_(job_ids), Job.cancel_requested.is_(True))
    return set(session.scalars(stmt))


def is_cancel_requested(session: Session, job_id: uuid.UUID) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(session: Session, job_id: uuid.UUID, status: str, error: str | None = None) -> Job | None:
    """End the job and return it as it ended (every column fresh); None (and nothing changed) when it had
    already ended: a job ends once."""
    now = utcnow()
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(TERMINAL))
        .values(
            status=status,
            error=error,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        # One round trip: the ended row comes back, overwriting any stale copy in the session.
        .returning(Job)
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one_or_none()


def release(session: Session, job_id: uuid.UUID, error: str | None) -> bool:
    """Send a running job back to the queue (a retryable failure or a shutdown); False when it was not
    running."""
    result = session.execute(
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
    return bool(result.rowcount)  # type: ignore[attr-defined]


def hand_back(session: Session, job_id: uuid.UUID, worker_id: str) -> bool:
    """A stopping worker returns a job it holds: queued again, and the attempt it was on not counted."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.lease_owner == worker_id)
        .values(
            status="queued",
            attempts=case((Job.attempts > 0, Job.attempts - 1), else_=0),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, job: Job) -> None:
    """Record the cancel (the flag, and the time it was first asked); a queued job ends at once, a
    running one once its worker takes its pending work out of the scheduler."""
    job.cancel_requested = True
    if job.cancel_requested_at is None:
        job.cancel_requested_at = utcnow()
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


def stale_queued(
    session: Session, older_than: timedelta, queues: list[str] | None, limit: int = 100
) -> list[Job]:
    """Queued jobs untouched for a while (on these queues; ``None``: any): candidates for re-delivery
    if RQ no longer holds them."""
    stmt = select(Job).where(Job.status == "queued", Job.updated_at < utcnow() - older_than)
    if queues is not None:
        stmt = stmt.where(Job.queue.in_(queues))
    return list(session.scalars(stmt.order_by(Job.created_at).limit(limit)))


def overdue_queued(session: Session, older_than: timedelta, limit: int = 100) -> list[Job]:
    """Jobs of any queue still queued ``older_than`` after their last change, oldest first, locked against
    a concurrent claim (one being claimed now is skipped)."""
    stmt = (
        select(Job)
        .where(Job.status == "queued", Job.updated_at < utcnow() - older_than)
        .order_by(Job.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def queued_on(session: Session, queue: str, model: str | None, limit: int = 100) -> list[Job]:
    """Queued jobs of ``queue`` (for ``model`` only, unless None), oldest first, locked against a
    concurrent claim (one being claimed now is skipped)."""
    stmt = select(Job).where(Job.status == "queued", Job.queue == queue)
    if model is not None:
        stmt = stmt.where(Job.model == model)
    stmt = stmt.order_by(Job.created_at).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def queued_heads(session: Session, queue: str, kinds: tuple[str, ...], per_tenant: int) -> list[Job]:
    """Each tenant's ``per_tenant`` oldest queued jobs of these kinds on a queue, oldest first (a worker
    admitting work: one tenant's backlog never hides another tenant's job)."""
    ranked = (
        select(Job.id, func.row_number().over(partition_by=Job.tenant, order_by=Job.created_at).label("rank"))
        .where(
            Job.queue == queue, Job.status == "queued", Job.kind.in_(kinds), Job.cancel_requested.is_(False)
        )
        .subquery()
    )
    stmt = (
        select(Job)
        .join(ranked, ranked.c.id == Job.id)
        .where(ranked.c.rank <= per_tenant)
        .order_by(Job.created_at)
    )
    return list(session.scalars(stmt))


# The advisory-lock space of the per-tenant admission lock (its other key is the tenant's hash).
_ADMISSION_LOCKS = 17_007


def lock_admissions(session: Session, tenant: str) -> None:
    """Make the tenant's job admissions take turns until this transaction ends (Postgres: an advisory
    transaction lock; SQLite lets one writer at a time anyway). A count of active jobs made after it
    sees every job that an earlier turn admitted."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_ADMISSION_LOCKS, func.hashtext(tenant))))


def count_active(session: Session, tenant: str, kinds: tuple[str, ...] | None = None) -> int:
    """The tenant's queued and running jobs (of ``kinds`` only, if given); a jury counts once (its member
    jobs are not counted)."""
    stmt = (
        select(func.count())
        .select_from(Job)
        .where(Job.tenant == tenant, Job.status.in_(("queued", "running")), Job.parent_id.is_(None))
    )
    if kinds is not None:
        stmt = stmt.where(Job.kind.in_(kinds))
    return int(session.scalar(stmt) or 0)


def count_by_status_kind(session: Session) -> list[tuple[str, str, int]]:
    """(status, kind, jobs) for every tenant together (the metrics' jobs-by-state gauge)."""
    stmt = select(Job.status, Job.kind, func.count()).group_by(Job.status, Job.kind)
    return [(status, kind, int(n)) for status, kind, n in session.execute(stmt)]


def metadata_values(session: Session, tenant: str, key: str, limit: int = 1000) -> list[str]:
    """The distinct values the tenant's jobs have under metadata ``key`` (e.g. MT-Bench run names),
    sorted."""
    value = Job.job_metadata[key].as_string()
    stmt = (
        select(value).where(Job.tenant == tenant, value.is_not(None)).distinct().order_by(value).limit(limit)
    )
    return [str(v) for v in session.scalars(stmt)]
