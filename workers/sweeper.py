"""Repairs delivery: re-queues jobs whose worker died (expired lease), re-delivers queued jobs that RQ
does not hold (enqueue failed after the commit, Redis lost its data, a worker released one), and fails
jobs that no worker took in time.

Every worker runs one for its own queue (and for overdue jobs, every queue: a model with no worker has
no sweeper of its own); the conditional claim makes duplicates harmless.
"""

from __future__ import annotations

import functools
import logging
import threading
from datetime import timedelta

from app.core.db import Database, after_commit
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue
from app.models.availability import load_failure

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
            if not queue.is_delivery_pending(job.id, job.attempts):
                log.warning("re-delivering job %s (not held by the queue)", job.id)
                queue.enqueue(job.id, job.queue, job.attempts)
                fixed += 1
    return fixed


def fail_overdue(db: Database, queue: JobQueue, timeout_seconds: float) -> int:
    """Fail the jobs, of any queue, still queued ``timeout_seconds`` after their last change: no worker
    took them (none runs for their model, or none can load it: the error then gives the reason its
    workers reported). Returns how many."""
    failed = 0
    with db.unit_of_work() as session:
        for job in jobs_repo.overdue_queued(session, timedelta(seconds=timeout_seconds)):
            reason = f"no worker took the job within {timeout_seconds:g} s (queue {job.queue})"
            failure = load_failure(queue.redis, job.queue)
            if failure is not None:
                reason += f": {failure.describe()}"
            failed += lifecycle.end(session, queue, job.id, "failed", reason)
    return failed


class Sweeper:
    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        queue_name: str,
        lease_seconds: float,
        max_attempts: int,
        queued_timeout_seconds: float,
    ):
        self._args = (db, queue, queue_name, lease_seconds, max_attempts)
        self._overdue_args = (db, queue, queued_timeout_seconds)
        self._interval = max(1.0, min(lease_seconds / 2, 30.0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)

    def _run(self) -> None:
        # The first pass runs at once: after a restart (or an embedded Redis that lost its data),
        # queued work is picked up without waiting a whole interval.
        while True:
            try:
                sweep(*self._args)
                fail_overdue(*self._overdue_args)
            except Exception:
                log.exception("sweep failed")
            if self._stop.wait(self._interval):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
