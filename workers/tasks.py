"""The RQ entry point: ``run_job(job_id)``. RQ only delivers the id; the job row is the truth."""

from __future__ import annotations

import logging
import uuid

from app.core.db import after_commit
from app.jobs import repository as jobs_repo
from workers import context
from workers.judging import JobInterrupted, JudgeJobRunner
from workers.lease import LeaseKeeper

log = logging.getLogger(__name__)

RUNNERS = {"judge_pairwise": JudgeJobRunner, "judge_single": JudgeJobRunner}


def run_job(job_id: str) -> str:
    """Claim the job, run it, and record how it ended. Returns the final status (for RQ's logs)."""
    ctx = context.current()
    jid = uuid.UUID(job_id)
    settings = ctx.settings
    with ctx.db.unit_of_work() as session:
        job = jobs_repo.claim(session, jid, ctx.worker_id, settings.job_lease_seconds)
        if job is None:
            current = jobs_repo.get_job(session, jid)
            return f"skipped ({current.status if current else 'missing'})"
        kind, params, attempts = job.kind, dict(job.params), job.attempts

    runner_cls = RUNNERS.get(kind)
    status, error = "succeeded", None
    with LeaseKeeper(ctx.db, jid, ctx.worker_id, settings.job_lease_seconds) as lease:
        try:
            if runner_cls is None:
                raise ValueError(f"this worker cannot run jobs of kind {kind!r}")
            runner_cls(ctx, jid, params, lease).run()
        except JobInterrupted as stop:
            if stop.status is None:
                log.warning("job %s: lease lost to another worker; stopping", jid)
                return "lease lost"
            status = stop.status
        except Exception as exc:
            log.exception("job %s failed (attempt %d)", jid, attempts)
            error = f"{type(exc).__name__}: {exc}"
            if attempts < settings.job_max_attempts:
                with ctx.db.unit_of_work() as session:
                    jobs_repo.release(session, jid, error)
                    after_commit(session, lambda: ctx.queue.enqueue(jid, ctx.queue_name, attempts))
                return "retrying"
            status = "failed"

    with ctx.db.unit_of_work() as session:
        jobs_repo.finish(session, jid, status, error)
        after_commit(session, lambda: ctx.queue.publish_ended(jid, status))
    return status
