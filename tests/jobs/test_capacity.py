"""The per-tenant active-job cap: exact near the cap; a tenant far below it, counted a moment ago, is
not counted again on every submission."""

from __future__ import annotations

import pytest

from app.core.config import Settings
from app.core.errors import ApiError
from app.jobs import repository as jobs_repo
from app.jobs.capacity import ActiveJobCounts, check_capacity
from tests.conftest import RollbackDatabase


def _queued(db: RollbackDatabase, tenant: str, n: int) -> None:
    with db.unit_of_work() as session:
        for _ in range(n):
            jobs_repo.create_job(
                session, kind="judge_pairwise", model="m", queue="q", params={}, total=1, tenant=tenant
            )


def test_far_below_the_cap_a_recent_count_is_reused_then_refreshed(
    db: RollbackDatabase, settings: Settings
) -> None:
    now = [0.0]
    recent = ActiveJobCounts(ttl_seconds=1.0, clock=lambda: now[0])
    capped = settings.model_copy(update={"max_active_jobs_per_tenant": 100})
    with db.unit_of_work() as session:
        check_capacity(session, capped, "t", recent)  # counted: 0 active
    _queued(db, "t", 95)  # (through another API process, say)
    with db.unit_of_work() as session:
        check_capacity(session, capped, "t", recent)  # 0 + 1 admitted is far below 100: not counted
    now[0] = 1.5  # the count is stale: counted again
    with db.unit_of_work() as session:
        check_capacity(session, capped, "t", recent)  # 95 active: still room
    _queued(db, "t", 5)
    with db.unit_of_work() as session, pytest.raises(ApiError) as refused:
        check_capacity(session, capped, "t", recent)  # near the cap: counted (100)
    assert refused.value.status == 429 and "100 queued or running" in refused.value.message


def test_near_the_cap_every_submission_is_counted(db: RollbackDatabase, settings: Settings) -> None:
    recent = ActiveJobCounts(ttl_seconds=60.0)
    capped = settings.model_copy(update={"max_active_jobs_per_tenant": 3})
    for _ in range(3):
        with db.unit_of_work() as session:
            check_capacity(session, capped, "t", recent)
        _queued(db, "t", 1)
    with db.unit_of_work() as session, pytest.raises(ApiError) as refused:
        check_capacity(session, capped, "t", recent)
    assert refused.value.status == 429 and "at most 3" in refused.value.message
