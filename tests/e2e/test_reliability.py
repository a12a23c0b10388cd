"""Accepted work survives failures: killed workers, a flushed Redis, a Postgres outage (real processes,
the real model). `bench/reliability.py` runs the same scenarios at full size for docs/RELIABILITY.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DATABASE_URL, TEST_E2E_REDIS_URL
from tests.e2e import reliability
from tests.e2e.services import Stack, make_stack

pytestmark = pytest.mark.e2e


def _stack(name: str, model_cache: Path, tmp_path: Path) -> Stack:
    return make_stack(name, TEST_E2E_REDIS_URL, model_cache, tmp_path / "logs", reliability.FAST_RECOVERY)


def test_sigkilled_workers_lose_and_duplicate_nothing(model_cache: Path, tmp_path: Path) -> None:
    report = reliability.kill_loop(_stack("judge_rel_kill", model_cache, tmp_path), kills=3, jobs=3, items=12)
    assert report.problems == [], report
    assert report.calls_per_item == {2: 36}
    assert report.max_attempts_seen >= 2  # at least one job really was taken over after a kill


def test_jobs_lost_by_redis_are_reconciled(model_cache: Path, tmp_path: Path) -> None:
    report = reliability.redis_flush(_stack("judge_rel_flush", model_cache, tmp_path), jobs=20)
    assert report.queued_in_redis_after_flush == 0
    assert report.reconciled == "reconciled 20 job(s)"
    assert report.problems == [], report


def test_postgres_outage_answers_503_and_loses_no_accepted_job(model_cache: Path, tmp_path: Path) -> None:
    stack = _stack("judge_rel_outage", model_cache, tmp_path)
    url = make_url(TEST_DATABASE_URL)
    proxy = reliability.TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.up()
    report = reliability.postgres_outage(
        stack, proxy, proxy.port, clients=3, before=2.0, down_for=4.0, after=2.0, pause=0.5
    )
    proxy.down()
    # (A hang would show as a client timeout, 30 s, among the statuses.)
    assert report.problems == [], report
    assert report.accepted > 0 and report.accepted_lost == 0, report
    assert report.statuses.get("503", 0) > 0, report
