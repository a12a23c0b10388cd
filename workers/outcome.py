"""How a worker ends a job: finished (and announced to `?wait=` listeners), or sent back to the queue
for another attempt while attempts remain."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from app.core.db import after_commit
from app.jobs import repository as jobs_repo
from workers.context import WorkerContext


def end(ctx: WorkerContext, job_id: uuid.UUID, status: str, error: str | None = None) -> None:
    """Record the job's end and publish it once the record is committed."""
    with ctx.db.unit_of_work() as session:
        end_in(ctx, session, job_id, status, error)


def end_in(ctx: WorkerContext, session: Any, job_id: uuid.UUID, status: str, error: str | None) -> None:
    jobs_repo.finish(session, job_id, status, error)
    after_commit(session, functools.partial(ctx.queue.publish_ended, job_id, status))


def retry_or_fail(ctx: WorkerContext, session: Any, job_id: uuid.UUID, attempts: int, error: str) -> None:
    """A retryable failure: re-queue the job (re-delivered after the commit), or fail it after its last
    attempt."""
    if attempts < ctx.settings.job_max_attempts:
        jobs_repo.release(session, job_id, error)
        after_commit(session, functools.partial(ctx.queue.enqueue, job_id, ctx.queue_name, attempts))
    else:
        end_in(ctx, session, job_id, "failed", error)
