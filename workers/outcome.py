"""How a worker ends a job: finished (and announced to `?wait=` listeners), sent back to the queue for
another attempt while attempts remain, or handed back untouched when the worker shuts down."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from app.core.db import after_commit
from app.db.tables import Job
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from workers.context import WorkerContext


class ShuttingDown(Exception):
    """The worker was asked to stop (SIGTERM): a long job stops at its next check and is handed back."""


def end(ctx: WorkerContext, job_id: uuid.UUID, status: str, error: str | None = None) -> None:
    """Record the job's end and publish it once the record is committed."""
    with ctx.db.unit_of_work() as session:
        end_in(ctx, session, job_id, status, error)


def end_in(
    ctx: WorkerContext,
    session: Any,
    job_id: uuid.UUID,
    status: str,
    error: str | None,
    describe: Callable[[Job], str] | None = None,
) -> None:
    """:func:`lifecycle.end` in the caller's transaction (``describe``: see there)."""
    lifecycle.end(session, ctx.queue, job_id, status, error, describe)


def retry_or_fail(ctx: WorkerContext, session: Any, job_id: uuid.UUID, attempts: int, error: str) -> None:
    """A retryable failure: re-queue the job (re-delivered after the commit), or fail it after its last
    attempt."""
    if attempts < ctx.settings.job_max_attempts:
        lifecycle.release(session, ctx.queue, job_id, error)
        after_commit(session, functools.partial(ctx.queue.enqueue, job_id, ctx.queue_name, attempts))
    else:
        end_in(ctx, session, job_id, "failed", error)


def hand_back(ctx: WorkerContext, session: Any, job_id: uuid.UUID) -> None:
    """Graceful shutdown: the job goes back to the queue at once, for any worker of its model, without
    spending an attempt (its committed progress is kept; the next worker resumes from it)."""
    if jobs_repo.hand_back(session, job_id, ctx.worker_id):
        lifecycle.announce(session, ctx.queue, job_id, "status", {"status": "queued", "error": None})
        after_commit(session, functools.partial(ctx.queue.enqueue_handed_back, job_id, ctx.queue_name))
