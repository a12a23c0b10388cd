"""Concurrent requests against a database whose commits every connection sees: registrations of one
template name, and submissions racing for the last places under a tenant's active-job caps."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.config import Settings
from app.core.db import Database
from app.core.state import AppState
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue
from app.main import create_app
from app.models import repository as models_repo
from tests.api.helpers import PAIR, PAIRWISE
from tests.conftest import TEST_REDIS_URL


class Committing:
    """The app on a committing database, called with a key of a tenant of its own."""

    def __init__(self, state: AppState, client: TestClient, tenant: str) -> None:
        self.state = state
        self.client = client
        self.tenant = tenant

    def limit(self, **settings: int) -> None:
        self.state.settings = self.state.settings.model_copy(update=settings)

    def at_once(self, n: int, request: Callable[[int], Any]) -> list[Any]:
        """``request(i)`` for i in 0..n-1, from n threads at once."""
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(request, range(n)))

    def active_jobs(self, kinds: tuple[str, ...] | None = None) -> int:
        with self.state.db.unit_of_work() as session:
            return jobs_repo.count_active(session, self.tenant, kinds)


@pytest.fixture
def committing(committing_url: str, settings: Settings, redis: Redis) -> Iterator[Committing]:
    settings = settings.model_copy(update={"database_url": committing_url})
    db = Database(committing_url)
    tenant = f"race-{uuid.uuid4().hex[:8]}"
    with db.unit_of_work() as session:
        models_repo.upsert(session, settings.default_model, "transformers", None)
        _, token = create_key(session, tenant, list(SCOPES), "race tests")
    state = AppState(
        settings=settings,
        db=db,
        redis=redis,
        async_redis=AsyncRedis.from_url(TEST_REDIS_URL),
        queue=JobQueue(redis, settings.job_timeout_seconds),
    )
    with TestClient(create_app(state=state), headers={"Authorization": f"Bearer {token}"}) as client:
        yield Committing(state, client, tenant)
    db.dispose()


def test_concurrent_registrations_of_one_template_name_get_one_version_each(committing: Committing) -> None:
    """Probe 5 of issue 17: 20 at once gave 10 × 201 and 10 × 500 (the unique version)."""
    template = {"name": "raced", "mode": "single", "user": "{question} {answer} [[rating]]"}
    responses = committing.at_once(20, lambda _: committing.client.post("/v1/templates", json=template))
    assert Counter(r.status_code for r in responses) == {201: 20}, [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 21))
    listed = committing.client.get("/v1/templates").json()["templates"]
    assert sorted(t["version"] for t in listed if t["name"] == "raced") == list(range(1, 21))


def test_concurrent_submissions_never_pass_the_active_job_cap(committing: Committing) -> None:
    """Probe 7 of issue 17: 120 submissions at once against a cap of 30 admitted 32."""
    committing.limit(max_active_jobs_per_tenant=30)
    responses = committing.at_once(120, lambda _: committing.client.post(PAIRWISE, json={"items": [PAIR]}))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 30, 429: 90}, statuses
    assert committing.active_jobs() == 30
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["type"] == "too_many_jobs"


def test_concurrent_long_jobs_never_pass_the_long_job_cap(committing: Committing) -> None:
    committing.limit(max_active_long_jobs_per_tenant=3)
    responses = committing.at_once(12, lambda _: committing.client.post("/v1/jobs/self-reward", json={}))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 3, 429: 9}, statuses
    assert committing.active_jobs() == 3
