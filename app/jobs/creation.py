"""Recording a new job, with the options every kind accepts (``metadata``, ``callback_url``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.config import Settings
from app.core.errors import InvalidInput
from app.core.idempotency import Idempotency
from app.db.tables import Job
from app.jobs import repository as jobs_repo
from app.jobs.capacity import check_capacity, check_long_job_capacity, confirm_capacity
from app.jobs.caps import SizeCap, check_sizes
from app.jobs.schemas import JobOptionsIn


def record_job(
    session: Session,
    settings: Settings,
    options: JobOptionsIn,
    *,
    kind: str,
    model: str,
    queue: str,
    params: dict[str, Any],
    total: int,
    tenant: str,
    job_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
) -> Job:
    """Add the job (queued) with the request's metadata and callback URL, under ``job_id`` if given (a
    member of ``parent_id`` if given); the
    caller enqueues it after the commit. 422 for a callback the service cannot sign; 429 when the job
    would take the tenant over a cap of active jobs (exact: the tenant's admissions take turns from here
    to their commit, so add little after it)."""
    if options.callback_url is not None and settings.webhook_secret is None:
        raise InvalidInput(
            "callback_url cannot be used: this service has no webhook signing secret configured "
            "(JUDGE_WEBHOOK_SECRET)",
            "callback_url",
        )
    job = jobs_repo.create_job(
        session,
        kind=kind,
        model=model,
        queue=queue,
        params=params,
        total=total,
        tenant=tenant,
        metadata=options.metadata,
        callback_url=options.callback_url,
        job_id=job_id,
        parent_id=parent_id,
    )
    confirm_capacity(session, settings, tenant, kind)
    return job


def admit_long_job(
    session: Session,
    settings: Settings,
    tenant: str,
    idem: Idempotency | None,
    dry_run: bool,
    sizes: Sequence[SizeCap],
) -> Job | None:
    """The checks every long job passes before it is recorded (a dry run: the size caps only). Returns
    the first request's job when this is a retry with the same Idempotency-Key. 422 for a size over
    its cap; 429 for a tenant at its quota of jobs or of long jobs."""
    if not dry_run:
        replayed = idempotency.replay_resource(
            session, tenant, idem, lambda id_: jobs_repo.get_job(session, id_, tenant), "job"
        )
        if replayed is not None:
            return replayed
    check_sizes(settings, sizes)
    if not dry_run:
        check_capacity(session, settings, tenant)
        check_long_job_capacity(session, settings, tenant)
    return None
