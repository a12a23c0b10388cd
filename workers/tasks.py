"""The RQ entry point: ``run_job(job_id)``. RQ only delivers the id; the job row is the truth.

What runs a job comes from its kind's registration (:mod:`app.kinds`); nothing here knows a kind by
name. Judging jobs run here, fused with the other judging jobs of the queue, for as long as any is
held. Long jobs are handed to the worker's orchestrators and run in threads of their own, so this loop
is free for judging while they go on for hours.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator

import app.kinds  # noqa: F401 - registers the job kinds
from app.jobs import kinds, lifecycle
from app.jobs import repository as jobs_repo
from app.judging.params import JudgingParams
from workers import context, outcome
from workers.context import WorkerContext
from workers.judging import JudgeBatcher
from workers.lease import LeaseKeeper

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _lease(ctx: WorkerContext) -> Iterator[LeaseKeeper]:
    """The worker's lease keeper, or one for this call (in-process runs)."""
    if ctx.lease is not None:
        yield ctx.lease
        return
    with LeaseKeeper(ctx.db, ctx.worker_id, ctx.settings.job_lease_seconds) as lease:
        yield lease


def run_job(job_id: str) -> str:
    """Claim the job and run it as its kind says (judging: fused with the queue's other judging jobs;
    long jobs: handed to the orchestrators). Returns what happened, for RQ's logs; the outcome itself
    is recorded on the job rows."""
    ctx = context.current()
    jid = uuid.UUID(job_id)
    settings = ctx.settings
    if ctx.long_jobs is not None and not ctx.long_jobs.has_room() and _is_long(ctx, jid):
        # Left queued: the orchestrators take it when one of their jobs ends.
        return "left queued (long jobs at capacity)"
    with ctx.db.unit_of_work() as session:
        job = lifecycle.claim(session, ctx.queue, jid, ctx.worker_id, settings.job_lease_seconds)
        if job is None:
            current = jobs_repo.get_job(session, jid)
            # Already taken: typically fused into another job's batch, or cancelled.
            return f"skipped ({current.status if current else 'missing'})"
        name, stored, attempts = job.kind, dict(job.params), job.attempts
        model, tenant = job.model, job.tenant
    try:
        kind = kinds.get(name)
        params = kind.validate_params(stored)
    except (LookupError, ValueError) as exc:
        outcome.end(ctx, jid, "failed", f"this worker cannot run this job: {exc}")
        return "failed"
    if kind.long:
        if ctx.long_jobs is not None:
            ctx.long_jobs.start(name, jid, attempts)
            return "started"
        with _lease(ctx) as lease:
            result: str = kind.load_runner()(ctx, lease, jid, attempts, threading.Event())
            return result
    result = kind.load_runner()(ctx, jid, params, attempts, model, tenant)
    return result


def run_judging(
    ctx: WorkerContext, job_id: uuid.UUID, params: JudgingParams, attempts: int, model: str, tenant: str
) -> str:
    """Judge the job, with every other judging job of the queue claimed meanwhile, until none is held."""
    with _lease(ctx) as lease:
        batcher = JudgeBatcher(ctx, lease, model)
        try:
            batcher.add(job_id, params, attempts, tenant)
            batcher.run()
        except Exception as exc:
            log.exception("judging failed; releasing %d job(s)", len(batcher.jobs))
            batcher.fail_all(f"{type(exc).__name__}: {exc}")
            return "failed or retrying"
    return "done"


def _is_long(ctx: WorkerContext, job_id: uuid.UUID) -> bool:
    with ctx.db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        return job is not None and job.kind in kinds.long_kinds()
