"""The per-tenant cap on active jobs, checked before a job is recorded."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import ApiError
from app.jobs import repository as jobs_repo


def check_capacity(session: Session, settings: Settings, tenant: str) -> None:
    """429 when the tenant already has ``settings.max_active_jobs_per_tenant`` queued or running jobs."""
    active = jobs_repo.count_active(session, tenant)
    limit = settings.max_active_jobs_per_tenant
    if active >= limit:
        raise ApiError(
            429,
            "too_many_jobs",
            f"this tenant has {active} queued or running jobs (at most {limit}); wait for some to end",
            headers={"Retry-After": "10"},
        )
