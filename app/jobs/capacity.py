"""The per-tenant caps on active jobs (all jobs, and long jobs), checked before a job is recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import ApiError
from app.jobs import kinds
from app.jobs import repository as jobs_repo


def _too_many(active: int, limit: int) -> ApiError:
    return ApiError(
        429,
        "too_many_jobs",
        f"this tenant has {active} queued or running jobs (at most {limit}); wait for some to end",
        headers={"Retry-After": "10"},
    )


def _too_many_long(active: int, limit: int) -> ApiError:
    return ApiError(
        429,
        "too_many_jobs",
        f"this tenant has {active} queued or running long jobs (prompt optimization, self-reward), "
        f"the quota JUDGE_MAX_ACTIVE_LONG_JOBS_PER_TENANT={limit}; wait for one to end",
        headers={"Retry-After": "60"},
    )


def check_capacity(
    session: Session, settings: Settings, tenant: str, recent: ActiveJobCounts | None = None
) -> None:
    """429 when the tenant already has ``settings.max_active_jobs_per_tenant`` queued or running jobs.
    With ``recent``, a tenant this process counted a moment ago, far below its cap, is not counted
    again. A first check, so that a refused request costs little: :func:`confirm_capacity` is the
    exact one."""
    limit = settings.max_active_jobs_per_tenant
    if recent is not None and recent.surely_below(tenant, limit):
        return
    active = jobs_repo.count_active(session, tenant)
    if recent is not None:
        recent.counted(tenant, active)
    if active >= limit:
        raise _too_many(active, limit)


def check_long_job_capacity(session: Session, settings: Settings, tenant: str) -> None:
    """429 when the tenant already has ``settings.max_active_long_jobs_per_tenant`` queued or running
    long jobs (prompt optimization, self-reward). A first check, like :func:`check_capacity`."""
    limit = settings.max_active_long_jobs_per_tenant
    active = jobs_repo.count_active(session, tenant, kinds.long_kinds())
    if active >= limit:
        raise _too_many_long(active, limit)


def confirm_capacity(session: Session, settings: Settings, tenant: str, kind: str) -> None:
    """429 when the job of ``kind`` just added (flushed, not committed) takes the tenant over its cap of
    active jobs, or of active long jobs. Exact however many submissions race: the tenant's admissions
    take turns from here to their commit, each counting the jobs of the turns before it and its own.
    Call it last before the commit: the turn is held until then."""
    jobs_repo.lock_admissions(session, tenant)
    limit = settings.max_active_jobs_per_tenant
    active = jobs_repo.count_active(session, tenant)
    if active > limit:
        raise _too_many(active - 1, limit)
    long_kinds = kinds.long_kinds()
    if kind in long_kinds:
        limit = settings.max_active_long_jobs_per_tenant
        active = jobs_repo.count_active(session, tenant, long_kinds)
        if active > limit:
            raise _too_many_long(active - 1, limit)


@dataclass
class _Count:
    active: int
    at: float
    admitted: int  # submissions let through since (each counted as a new active job)


class ActiveJobCounts:
    """A process's recent count of each tenant's active jobs (the database count, at most
    ``ttl_seconds`` old, plus the submissions it let through since). While that stays a tenth of the
    cap below it, a submission is let through without counting again; near the cap every submission
    is counted. Other API processes' submissions within ``ttl_seconds`` are the only slack of this first
    check (:func:`confirm_capacity`, after it, has none)."""

    def __init__(self, ttl_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._counts: dict[str, _Count] = {}
        self._lock = threading.Lock()

    def surely_below(self, tenant: str, limit: int) -> bool:
        """True (and the submission is counted in) when the tenant is far enough below ``limit``."""
        with self._lock:
            count = self._counts.get(tenant)
            if count is None or self._clock() - count.at > self.ttl_seconds:
                return False
            if count.active + count.admitted + max(1, limit // 10) >= limit:
                return False
            count.admitted += 1
            return True

    def counted(self, tenant: str, active: int) -> None:
        """The database's count for ``tenant`` now, and this submission on top of it."""
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts.clear()
            self._counts[tenant] = _Count(active, self._clock(), 1)
