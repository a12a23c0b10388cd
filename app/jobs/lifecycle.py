"""A job's state changes, each with what goes with it. The change is recorded in the caller's transaction
and, once committed, announced on the job's event stream (an end also on the job-ended channel that
`?wait=` listens to). An end writes the job's webhook delivery in the same transaction, so a committed
end always reaches its callback."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.core.db import after_commit
from app.db.tables import Job
from app.jobs import kinds
from app.jobs import repository as jobs_repo
from app.jobs.events import EventName, end_data
from app.jobs.queue import JobQueue
from app.webhooks import outbox


def announce(
    session: Session, queue: JobQueue, job_id: uuid.UUID, name: EventName, data: dict[str, Any]
) -> None:
    """Append the event to the job's stream once the transaction commits."""
    after_commit(session, functools.partial(queue.events.append, job_id, name, data))


def claim(
    session: Session, queue: JobQueue, job_id: uuid.UUID, worker_id: str, lease_seconds: float
) -> Job | None:
    """:func:`jobs_repo.claim`, announcing the job as running."""
    job = jobs_repo.claim(session, job_id, worker_id, lease_seconds)
    if job is not None:
        announce(session, queue, job_id, "status", {"status": "running", "attempts": job.attempts})
    return job


def record_progress(
    session: Session,
    queue: JobQueue,
    job_id: uuid.UUID,
    done: int,
    stage: str | None,
    total: int | None = None,
    failed: int | None = None,
) -> None:
    """:func:`jobs_repo.set_progress`, announcing a `progress` event when done or total moved and a
    `stage` event when the stage changed."""
    before = jobs_repo.progress_of(session, job_id)
    jobs_repo.set_progress(session, job_id, done, stage, total, failed)
    if before is None:
        return
    old_done, old_total, old_stage, parent_id = before
    if parent_id is not None:
        _members_moved(session, queue, parent_id)
    new_total = total if total is not None else old_total
    if (done, new_total) != (old_done, old_total):
        data: dict[str, Any] = {"done": done, "total": new_total}
        if failed is not None:
            data["failed"] = failed
        announce(session, queue, job_id, "progress", data)
    if stage != old_stage:
        announce(session, queue, job_id, "stage", {"stage": stage})


def release(session: Session, queue: JobQueue, job_id: uuid.UUID, error: str | None) -> None:
    """:func:`jobs_repo.release`, announcing the job as queued again."""
    if jobs_repo.release(session, job_id, error):
        announce(session, queue, job_id, "status", {"status": "queued", "error": error})


def end(
    session: Session,
    queue: JobQueue,
    job_id: uuid.UUID,
    status: str,
    error: str | None,
    describe: Callable[[Job], str] | None = None,
) -> bool:
    """End the job (succeeded, failed or cancelled) with its callback and announcements; False when it
    had already ended (nothing is recorded or announced twice). ``describe`` gives the ended job as
    the API shows it (JSON, with its results), for the wake-up of `?wait=` requests
    (:meth:`JobQueue.announce_end`)."""
    job = jobs_repo.finish(session, job_id, status, error)
    if job is None:
        return False
    _ended(session, queue, job, describe(job) if describe is not None else None)
    return True


def cancel(session: Session, queue: JobQueue, job: Job) -> None:
    """Ask for the job's cancellation: a queued job ends at once (with its callback); a running one's
    pending work leaves its model's scheduler and the job ends cancelled within seconds. A job with
    members (a jury) cancels them; it ends once they all have."""
    # Member rows are locked before their parent's, as their workers do (no deadlock with them).
    members = [m for m in jobs_repo.members(session, job.id) if m.status not in jobs_repo.TERMINAL]
    for member in members:
        jobs_repo.request_cancel(session, member)
    jobs_repo.request_cancel(session, job)
    if job.status == "cancelled":
        _ended(session, queue, job)
    for member in members:
        if member.status == "cancelled":
            _ended(session, queue, member)


def _ended(session: Session, queue: JobQueue, job: Job, described: str | None = None) -> None:
    outbox.record(session, job)
    # The `end` event and the wake-up of `?wait=` listeners go out together, the event first.
    after_commit(session, functools.partial(queue.announce_end, job.id, end_data(job), described))
    if job.parent_id is not None:
        _members_moved(session, queue, job.parent_id)


def _members_moved(session: Session, queue: JobQueue, parent_id: uuid.UUID) -> None:
    """A member job progressed or ended: its parent's kind updates the parent (with its row locked, so
    members ending at once take turns and the last one sees every other's end)."""
    parent = jobs_repo.lock_job(session, parent_id)
    if parent is None or parent.status in jobs_repo.TERMINAL:
        return
    hook = kinds.get(parent.kind).members_moved
    if hook is not None:
        hook(session, queue, parent)
