"""The RQ entry point: ``run_job(job_id)``. RQ only delivers the id; the job row is the truth.

Judging jobs run here, fused with the other judging jobs of the queue, for as long as any is held.
Long jobs (prompt optimization, self-reward) are handed to the worker's orchestrators and run in
threads of their own, so this loop is free for judging while they go on for hours.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator

from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from workers import context, outcome
from workers.context import WorkerContext
from workers.judging import JUDGE_KINDS, JudgeBatcher
from workers.lease import LeaseKeeper
from workers.long_jobs import Runner
from workers.prompt_opt import run_prompt_opt
from workers.self_reward import run_self_reward

log = logging.getLogger(__name__)


def _prompt_opt(
    ctx: WorkerContext, lease: LeaseKeeper, job_id: uuid.UUID, attempts: int, _: threading.Event
) -> str:
    return run_prompt_opt(ctx, lease, job_id, attempts)


# The long job kinds and what runs each: written once, here.
LONG_JOB_RUNNERS: dict[str, Runner] = {"prompt_opt": _prompt_opt, "self_reward": run_self_reward}


@contextlib.contextmanager
def _lease(ctx: WorkerContext) -> Iterator[LeaseKeeper]:
    """The worker's lease keeper, or one for this call (in-process runs)."""
    if ctx.lease is not None:
        yield ctx.lease
        return
    with LeaseKeeper(ctx.db, ctx.worker_id, ctx.settings.job_lease_seconds) as lease:
        yield lease


def run_job(job_id: str) -> str:
    """Claim the job and run it (judging: fused with the queue's other judging jobs; long jobs: handed
    to the orchestrators). Returns what happened, for RQ's logs; the outcome itself is recorded on the
    job rows."""
    ctx = context.current()
    jid = uuid.UUID(job_id)
    settings = ctx.settings
    if ctx.long_jobs is not None and not ctx.long_jobs.has_room() and not _is_judging(ctx, jid):
        # Left queued: the orchestrators take it when one of their jobs ends.
        return "left queued (long jobs at capacity)"
    with ctx.db.unit_of_work() as session:
        job = lifecycle.claim(session, ctx.queue, jid, ctx.worker_id, settings.job_lease_seconds)
        if job is None:
            current = jobs_repo.get_job(session, jid)
            # Already taken: typically fused into another job's batch, or cancelled.
            return f"skipped ({current.status if current else 'missing'})"
        kind, params, attempts, model, tenant = (
            job.kind,
            dict(job.params),
            job.attempts,
            job.model,
            job.tenant,
        )

    if kind in LONG_JOB_RUNNERS:
        if ctx.long_jobs is not None:
            ctx.long_jobs.start(kind, jid, attempts)
            return "started"
        with _lease(ctx) as lease:
            return LONG_JOB_RUNNERS[kind](ctx, lease, jid, attempts, threading.Event())
    if kind not in JUDGE_KINDS:
        outcome.end(ctx, jid, "failed", f"this worker cannot run jobs of kind {kind!r}")
        return "failed"
    with _lease(ctx) as lease:
        batcher = JudgeBatcher(ctx, lease, model)
        try:
            batcher.add(jid, params, attempts, tenant)
            batcher.run()
        except Exception as exc:
            log.exception("judging failed; releasing %d job(s)", len(batcher.jobs))
            batcher.fail_all(f"{type(exc).__name__}: {exc}")
            return "failed or retrying"
    return "done"


def _is_judging(ctx: WorkerContext, job_id: uuid.UUID) -> bool:
    with ctx.db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        return job is None or job.kind in JUDGE_KINDS
