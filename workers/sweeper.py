"""Repairs delivery: re-queues jobs whose worker died (expired lease), re-delivers queued jobs that RQ
does not hold (enqueue failed after the commit, Redis lost its data, a worker released one, a popped
delivery no worker started), and fails jobs that no worker will take: their model's workers reported
that they cannot load it, or none took them in time.

Every worker runs one for its own queue (and for jobs no worker will take, every queue: a model with no
worker has no sweeper of its own); the conditional claim makes duplicates harmless.
"""

from __future__ import annotations

import functools
import logging
import threading
from datetime import UTC, datetime, timedelta

from app.core.config import Settings
from app.core.db import Database, after_commit
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue
from app.models.availability import load_failure, load_failures

log = logging.getLogger(__name__)


# A queued job untouched this long is checked against RQ; a duplicate delivery is harmless (the
# claim is conditional), so this can be short.
REDELIVERY_AFTER = timedelta(seconds=15)


def sweep(
    db: Database, queue: JobQueue, queue_name: str | None, lease_seconds: float, max_attempts: int
) -> int:
    """One pass over one model's queue (``None``: every queue, as `judge reconcile` does); returns how
    many jobs it re-delivered or failed."""
    fixed = 0
    with db.unit_of_work() as session:
        for job in jobs_repo.expired_running(session):
            if queue_name is not None and job.queue != queue_name:
                continue
            if job.attempts >= max_attempts:
                reason = f"worker lost {job.attempts} time(s) (lease expired); giving up"
                lifecycle.end(session, queue, job.id, "failed", reason)
            else:
                lifecycle.release(session, queue, job.id, "previous worker stopped heartbeating; retrying")
                after_commit(session, functools.partial(queue.enqueue, job.id, job.queue, job.attempts))
            fixed += 1
    with db.unit_of_work() as session:
        queues = None if queue_name is None else [queue_name]
        for job in jobs_repo.stale_queued(session, REDELIVERY_AFTER, queues):
            if not queue.is_delivery_pending(job.id, job.attempts, job.queue):
                log.warning("re-delivering job %s (not held by the queue)", job.id)
                queue.enqueue(job.id, job.queue, job.attempts)
                fixed += 1
    return fixed


def fail_unloadable(db: Database, queue: JobQueue, grace_seconds: float) -> int:
    """Fail the queued jobs, of any queue, that a load failure has kept from running for ``grace_seconds``
    (reported that long ago and not cleared by a load since): the error gives the reason the workers
    reported. A failure of a queue's own model holds every job of the queue (its workers cannot start);
    another model's, the jobs for that model. Returns how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    standing = [f for f in load_failures(queue.redis) if f.since <= cutoff]
    failed = 0
    if not standing:
        return failed
    with db.unit_of_work() as session:
        for failure in standing:
            model = None if failure.blocks_queue else failure.model
            reason = (
                f"{failure.describe()} (since {failure.since:%Y-%m-%d %H:%M:%S} UTC; no worker loaded it)"
            )
            for job in jobs_repo.queued_on(session, failure.queue, model):
                failed += lifecycle.end(session, queue, job.id, "failed", reason)
    return failed


def fail_overdue(db: Database, queue: JobQueue, timeout_seconds: float) -> int:
    """Fail the jobs, of any queue, still queued ``timeout_seconds`` after their last change: no worker
    took them (none runs for their model, or none can load it: the error then gives the reason its
    workers reported). Returns how many."""
    failed = 0
    with db.unit_of_work() as session:
        for job in jobs_repo.overdue_queued(session, timedelta(seconds=timeout_seconds)):
            reason = f"no worker took the job within {timeout_seconds:g} s (queue {job.queue})"
            failure = load_failure(queue.redis, job.queue, job.model)
            if failure is not None:
                reason += f": {failure.describe()}"
            failed += lifecycle.end(session, queue, job.id, "failed", reason)
    return failed


def repair(db: Database, queue: JobQueue, queue_name: str | None, settings: Settings) -> int:
    """One sweeper pass: :func:`sweep` of ``queue_name`` (None: every queue), then the jobs of every queue
    that no worker will take. Returns how many jobs it re-delivered or failed."""
    fixed = sweep(db, queue, queue_name, settings.job_lease_seconds, settings.job_max_attempts)
    fixed += fail_unloadable(db, queue, settings.model_load_failure_grace_seconds)
    return fixed + fail_overdue(db, queue, settings.job_queued_timeout_seconds)


class Sweeper:
    """A background thread running :func:`repair` for a worker's queue."""

    def __init__(self, db: Database, queue: JobQueue, queue_name: str, settings: Settings):
        self._args = (db, queue, queue_name, settings)
        self._interval = max(1.0, min(settings.job_lease_seconds / 2, 30.0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)

    def _run(self) -> None:
        # The first pass runs at once: after a restart (or an embedded Redis that lost its data),
        # queued work is picked up without waiting a whole interval.
        while True:
            try:
                repair(*self._args)
            except Exception:
                log.exception("sweep failed")
            if self._stop.wait(self._interval):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
