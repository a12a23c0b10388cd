"""Self-reward jobs in the worker: runs the loop of :mod:`app.self_reward.driver` with this worker's
scheduler, training dispatch, lease and shutdown flag, and records how the job ended.

The worker's engines serve every model of the run (weights are swapped in place between models).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Literal

from app.engine.base import Conversation, Generation, SamplingParams
from app.jobs import repository as jobs_repo
from app.scheduling.policy import Priority
from app.self_reward import driver
from app.self_reward.machine import Interrupted, Interruption, Stop
from app.training.dispatch import train
from app.training.runner import TrainingCancelled
from app.training.specs import DPOSpec, SFTSpec, TrainResult
from workers import outcome
from workers.context import WorkerContext
from workers.lease import LeaseKeeper
from workers.scheduler import RequestCancelled, SchedulerStopped

log = logging.getLogger(__name__)


class WorkerRuntime:
    """The loop's :class:`~app.self_reward.driver.Runtime` in a worker."""

    def __init__(
        self, ctx: WorkerContext, lease: LeaseKeeper, job_id: uuid.UUID, tenant: str, cancel: threading.Event
    ) -> None:
        self.ctx = ctx
        self.lease = lease
        self.job_id = job_id
        self.tenant = tenant
        # Set by the worker when the job is cancelled: stops a training child at once.
        self.cancel = cancel

    def interruption(self) -> Interruption | None:
        if self.lease.is_lost(self.job_id):
            return "lease lost"
        with self.ctx.db.unit_of_work() as session:
            if jobs_repo.is_cancel_requested(session, self.job_id):
                return "cancelled"
        return "shutdown" if self.ctx.shutdown.is_set() else None

    def generate(
        self, model: str, conversations: list[Conversation], sampling: SamplingParams
    ) -> list[Generation]:
        engine = self.ctx.engine_for(model, Priority.BACKGROUND, self.tenant, self.job_id)
        try:
            return engine.generate(conversations, sampling)
        except RequestCancelled:
            raise Interrupted("cancelled") from None
        except SchedulerStopped:
            raise Interrupted("shutdown") from None

    def train(self, kind: Literal["sft", "dpo"], spec: SFTSpec | DPOSpec) -> TrainResult:
        try:
            return train(
                kind,
                spec,
                float(self.ctx.settings.job_timeout_seconds),
                self.cancel,
                settings=self.ctx.settings,
                redis=self.ctx.queue.redis,
                shutdown=self.ctx.shutdown,
                job_id=str(self.job_id),
            )
        except TrainingCancelled:
            # Cancelled, or the worker is stopping: say which.
            raise Interrupted(self.interruption() or "shutdown") from None


def run_self_reward(
    ctx: WorkerContext,
    lease: LeaseKeeper,
    job_id: uuid.UUID,
    attempts: int,
    cancel: threading.Event | None = None,
) -> str:
    """Run (or resume) a self-reward job to its end; returns what happened, for RQ's logs. ``cancel``,
    when set by the worker, stops a training in progress at once."""
    lease.hold(job_id)
    try:
        return _run(ctx, lease, job_id, attempts, cancel or threading.Event())
    finally:
        lease.release(job_id)


def _run(
    ctx: WorkerContext, lease: LeaseKeeper, job_id: uuid.UUID, attempts: int, cancel: threading.Event
) -> str:
    try:
        job = driver.load(ctx.db, job_id)
        runtime = WorkerRuntime(ctx, lease, job_id, job.tenant, cancel)
        finished = driver.SelfRewardLoop(job, ctx.db, ctx.queue, ctx.settings, runtime).run()
    except Interrupted as exc:
        return _interrupted(ctx, job_id, exc.why)
    except Stop as stop:
        outcome.end(ctx, job_id, "failed", stop.reason)
        return "failed"
    except Exception as exc:
        log.exception("self-reward job %s failed", job_id)
        with ctx.db.unit_of_work() as session:
            outcome.retry_or_fail(ctx, session, job_id, attempts, f"{type(exc).__name__}: {exc}")
        return "failed or retrying"
    outcome.end(ctx, job_id, finished.status, finished.reason)
    return finished.status


def _interrupted(ctx: WorkerContext, job_id: uuid.UUID, why: Interruption) -> str:
    if why == "lease lost":
        log.warning("job %s: lease lost to another worker; stopping", job_id)
        return "lease lost"
    if why == "cancelled":
        outcome.end(ctx, job_id, "cancelled", None)
        return "cancelled"
    # Shutdown: committed steps stay done; the next worker redoes only the interrupted one.
    with ctx.db.unit_of_work() as session:
        outcome.hand_back(ctx, session, job_id)
    return "handed back (shutdown)"
