"""Job resources shared by every kind: read, list, cancel, results, and waiting for the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.core.cursors import decode_cursor, encode_cursor
from app.core.db import Database
from app.core.errors import Conflict, InvalidInput, NotFound
from app.db.tables import Job
from app.jobs import kinds, lifecycle
from app.jobs import repository as jobs_repo
from app.jobs.end_listener import EndWatch
from app.jobs.kinds import ResultsQuery
from app.jobs.queue import JobQueue
from app.jobs.schemas import ItemResult, JobOut, JobPage, Progress, metadata_key_problem
from app.judging import repository as judging_repo
from app.judging.jury_members import with_judges

TERMINAL = frozenset(jobs_repo.TERMINAL)
# While waiting for a job's end, how often the database is re-read in case its announcement was lost.
SAFETY_READ_SECONDS = 5.0

T = TypeVar("T")


_INTERNAL_PARAMS = frozenset({"templates", "model_key"})


def _public_params(params: dict[str, Any]) -> dict[str, Any]:
    """The job's options as shown on the job: template snapshots, the judge model's identity (a hash
    for the verdict cache) and inline example rows (which can be tens of thousands) are left out; a
    split shows how many inline rows it has instead."""
    shown = {k: v for k, v in params.items() if k not in _INTERNAL_PARAMS}
    data = shown.get("data")
    if isinstance(data, dict):
        shown["data"] = {
            name: (
                {**{k: v for k, v in split.items() if k != "rows"}, "inline_rows": len(split["rows"])}
                if isinstance(split, dict) and split.get("rows") is not None
                else split
            )
            for name, split in data.items()
        }
    return shown


def job_out(job: Job, results: list[ItemResult] | None = None) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,  # type: ignore[arg-type]
        model=job.model,
        progress=Progress(done=job.progress_done, total=job.progress_total, failed=job.progress_failed),
        stage=job.stage,
        attempts=job.attempts,
        error=job.error,
        detail=job.detail,
        params=_public_params(job.params),
        metadata=job.job_metadata,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        cancel_requested_at=job.cancel_requested_at,
        results=results,
    )


def get_job(session: Session, job_id: uuid.UUID, tenant: str) -> Job:
    job = jobs_repo.get_job(session, job_id, tenant)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs(
    session: Session,
    tenant: str,
    limit: int,
    cursor: str | None,
    status: str | None,
    kind: str | None,
    model: str | None,
    metadata: list[str] | None = None,
    visible: tuple[str, ...] | None = None,
) -> JobPage:
    """A page of the tenant's jobs; ``metadata`` holds `key:value` filters (all must match); ``visible``:
    only jobs of these kinds (those the caller's key may read)."""
    if kind is not None and kind not in kinds.names():
        raise InvalidInput(f"unknown job kind {kind!r}; one of {', '.join(kinds.names())}", "kind")
    wanted = parse_metadata_filters(metadata or [])
    after = None
    if cursor:
        parts = decode_cursor(cursor)
        try:
            after = (datetime.fromisoformat(str(parts[0])), uuid.UUID(str(parts[1])))
        except (IndexError, ValueError) as exc:
            raise InvalidInput("malformed cursor", "cursor") from exc
    jobs = jobs_repo.list_jobs(
        session,
        tenant=tenant,
        limit=limit + 1,
        after=after,
        status=status,
        kind=kind,
        model=model,
        metadata=wanted,
        kinds=visible,
    )
    next_cursor = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        last = jobs[-1]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)])
    return JobPage(jobs=[job_out(j) for j in jobs], next_cursor=next_cursor)


def parse_metadata_filters(filters: list[str]) -> dict[str, str]:
    """``["team:a", "run:7"]`` → ``{"team": "a", "run": "7"}`` (422 naming `metadata` when one is
    malformed, or the same key asks for two values)."""
    wanted: dict[str, str] = {}
    for text in filters:
        key, sep, value = text.partition(":")
        if not sep:
            raise InvalidInput(f"metadata filter {text[:80]!r} is not `key:value`", "metadata")
        problem = metadata_key_problem(key)
        if problem:
            raise InvalidInput(problem, "metadata")
        if key in wanted and wanted[key] != value:
            raise InvalidInput(f"metadata filter names key {key!r} twice with different values", "metadata")
        wanted[key] = value
    return wanted


def results_page(
    session: Session,
    job_id: uuid.UUID,
    tenant: str,
    limit: int,
    cursor: str | None,
    status: str | None = None,
) -> BaseModel:
    """The job's results as its kind reads them (judging: a page of item results, only items in
    ``status`` if given; long jobs: the run's results, not paged)."""
    job = get_job(session, job_id, tenant)
    return kinds.get(job.kind).results(session, job, ResultsQuery(limit, cursor, status))


def all_results(session: Session, job: Job) -> list[ItemResult]:
    return with_judges(session, job, judging_repo.results_page(session, job.id, -1, job.progress_total + 1))


def cancel(session: Session, queue: JobQueue, job_id: uuid.UUID, tenant: str) -> Job:
    job = get_job(session, job_id, tenant)
    if job.status in ("succeeded", "failed"):
        raise Conflict(f"job {job_id} already {job.status}")
    if job.status == "cancelled":
        return job
    lifecycle.cancel(session, queue, job)
    return job


async def wait_until_ended(
    db: Database,
    watch: EndWatch,
    timeout: float,
    read: Callable[[Session], T | None],
    *,
    look_first: bool = True,
    from_announcement: Callable[[bytes], T | None] | None = None,
) -> T | None:
    """What ``read`` (run in a fresh read-only session) returns once the job has ended, i.e. once it
    returns something other than None; None when ``timeout`` passes first.

    ``watch`` listens for the job's end (:meth:`JobEndListener.watch`) from before this call. An
    announcement that carries the ended job answers through ``from_announcement`` (no database read);
    after any other, ``read`` runs once. With ``look_first`` it also runs at once, as the job may have
    ended before the watch began; a watch that began before the job was recorded needs no such look.
    It runs again every few seconds in case an announcement was lost (e.g. Redis restarted), and once
    at the end of the wait.
    """

    def attempt() -> T | None:
        with db.reading() as session:
            return read(session)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    outcome = await asyncio.to_thread(attempt) if look_first else None
    while outcome is None and (now := loop.time()) < deadline:
        announced = await watch.wait(min(deadline, now + SAFETY_READ_SECONDS) - now)
        if announced and watch.message is not None and from_announcement is not None:
            outcome = from_announcement(watch.message)
            if outcome is not None:
                break
        outcome = await asyncio.to_thread(attempt)
    return outcome
