"""The RQ entry point: ``run_job(job_id)``. RQ only delivers the id; the job row is the truth."""

from __future__ import annotations

import logging
import uuid

from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from workers import context, outcome
from workers.judging import JUDGE_KINDS, JudgeBatcher
from workers.lease import LeaseKeeper
from workers.prompt_opt import run_prompt_opt
from workers.self_reward import run_self_reward

log = logging.getLogger(__name__)


def run_job(job_id: str) -> str:
    """Claim the job and run it (fused with compatible queued jobs). Returns what happened, for
    RQ's logs; the outcome itself is recorded on the job rows."""
    ctx = context.current()
    jid = uuid.UUID(job_id)
    settings = ctx.settings
    with ctx.db.unit_of_work() as session:
        job = lifecycle.claim(session, ctx.queue, jid, ctx.worker_id, settings.job_lease_seconds)
        if job is None:
            current = jobs_repo.get_job(session, jid)
            # Already taken: typically fused into another job's batch, or cancelled.
            return f"skipped ({current.status if current else 'missing'})"
        kind, params, attempts, model = job.kind, dict(job.params), job.attempts, job.model

    with LeaseKeeper(ctx.db, ctx.worker_id, settings.job_lease_seconds) as lease:
        if kind == "prompt_opt":
            return run_prompt_opt(ctx, lease, jid, attempts)
        if kind == "self_reward":
            return run_self_reward(ctx, lease, jid, attempts)
        if kind not in JUDGE_KINDS:
            outcome.end(ctx, jid, "failed", f"this worker cannot run jobs of kind {kind!r}")
            return "failed"
        batcher = JudgeBatcher(ctx, lease, model, params)
        try:
            batcher.add(jid, params, attempts)
            batcher.run()
        except Exception as exc:
            log.exception("judging batch failed; releasing %d job(s)", len(batcher.jobs))
            batcher.fail_all(f"{type(exc).__name__}: {exc}")
            return "failed or retrying"
    return "done"
