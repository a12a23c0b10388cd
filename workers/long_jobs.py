"""Long jobs as orchestrators: each prompt-optimization or self-reward job runs its state machine in a
thread of its own, sends its model calls to the worker's scheduler (so they share batching with live
judging) and owns no engine. Several run at once; none holds the worker's job loop.

A watcher thread looks for cancels every ``CANCEL_POLL_SECONDS``: a cancelled job's requests leave
the scheduler at once (its waiting calls raise RequestCancelled) and its training child, if any, is
stopped (SIGTERM, then SIGKILL); the job then ends `cancelled` at its next check.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

import app.kinds  # noqa: F401 - registers the job kinds
from app.jobs import kinds, lifecycle
from app.jobs import repository as jobs_repo
from workers import outcome
from workers.context import WorkerContext
from workers.lease import LeaseKeeper

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 1.0


@dataclass
class _Running:
    job_id: uuid.UUID
    thread: threading.Thread
    cancel: threading.Event


class LongJobs:
    """The long jobs this worker orchestrates (at most ``settings.max_long_jobs_per_worker``)."""

    def __init__(self, ctx: WorkerContext, lease: LeaseKeeper) -> None:
        self.ctx = ctx
        self.lease = lease
        # Each long kind's runner: (ctx, lease, job id, attempts, cancel event) -> what happened.
        self.kinds = kinds.long_kinds()
        self._running: dict[uuid.UUID, _Running] = {}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="long-job-cancels", daemon=True)
        self._watcher.start()

    def has_room(self) -> bool:
        with self._mutex:
            self._running = {k: r for k, r in self._running.items() if r.thread.is_alive()}
            return len(self._running) < self.ctx.settings.max_long_jobs_per_worker

    def claim_and_start(self, job_id: uuid.UUID) -> int | None:
        """Claim a queued long job and start it; its attempt number, or None when it was not ours."""
        with self.ctx.db.unit_of_work() as session:
            job = lifecycle.claim(
                session, self.ctx.queue, job_id, self.ctx.worker_id, self.ctx.settings.job_lease_seconds
            )
            if job is None:
                return None
            kind, attempts = job.kind, job.attempts
        try:
            self.start(kind, job_id, attempts)
        except Exception as exc:  # its runner cannot load (a broken deploy): the attempt fails, visibly
            log.exception("%s job %s could not start", kind, job_id)
            with self.ctx.db.unit_of_work() as session:
                error = f"the job could not start on this worker: {type(exc).__name__}: {exc}"
                outcome.retry_or_fail(self.ctx, session, job_id, attempts, error)
        return attempts

    def start(self, kind: str, job_id: uuid.UUID, attempts: int) -> None:
        """Run a claimed job in a thread of its own."""
        runner = kinds.get(kind).load_runner()
        cancel = threading.Event()

        def body() -> None:
            try:
                result = runner(self.ctx, self.lease, job_id, attempts, cancel)
                log.info("%s job %s: %s", kind, job_id, result)
            except Exception:
                log.exception("%s job %s crashed", kind, job_id)
            finally:
                with self._mutex:
                    self._running.pop(job_id, None)

        thread = threading.Thread(target=body, name=f"{kind}-{str(job_id)[:8]}", daemon=True)
        with self._mutex:
            self._running[job_id] = _Running(job_id, thread, cancel)
        thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(CANCEL_POLL_SECONDS):
            if not self.ctx.shutdown.is_set():
                self._start_queued()
            with self._mutex:
                held = dict(self._running)
            if not held:
                continue
            try:
                with self.ctx.db.unit_of_work() as session:
                    cancelled = jobs_repo.cancel_requested_among(session, list(held))
            except Exception:
                log.warning("could not look for cancelled long jobs", exc_info=True)
                continue
            for job_id in cancelled:
                running = held[job_id]
                if not running.cancel.is_set():
                    log.info("long job %s: cancel requested; stopping its calls and training", job_id)
                    running.cancel.set()
                    self.ctx.scheduler.cancel(job_id)

    def _start_queued(self) -> None:
        """Take queued long jobs of this queue while there is room (their deliveries may have come
        while the worker was full)."""
        try:
            while self.has_room():
                with self.ctx.db.unit_of_work() as session:
                    heads = jobs_repo.queued_heads(session, self.ctx.queue_name, self.kinds, per_tenant=1)
                if not heads:
                    return
                attempts = self.claim_and_start(heads[0].id)
                if attempts is not None:
                    self.ctx.queue.withdraw(self.ctx.queue_name, [(heads[0].id, attempts - 1)])
        except Exception:
            log.warning("could not start queued long jobs", exc_info=True)

    def running(self) -> list[uuid.UUID]:
        with self._mutex:
            return list(self._running)

    def join(self, timeout: float | None) -> list[uuid.UUID]:
        """Wait for the running jobs to end (after the worker's shutdown flag is set and the scheduler
        stopped, they hand themselves back); returns those still running after ``timeout`` (None: wait
        for them all, including jobs started meanwhile)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._mutex:
                threads = [r.thread for r in self._running.values() if r.thread.is_alive()]
            if not threads:
                break
            for thread in threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                break
        self._stop.set()
        return self.running()
