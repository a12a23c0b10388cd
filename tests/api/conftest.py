"""API tests: the real app against the real Postgres (rolled back per test) and Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.config import Settings
from app.core.state import AppState
from app.engine.base import Conversation
from app.jobs.queue import JobQueue
from app.main import create_app
from app.models import repository as models_repo
from tests.conftest import TEST_REDIS_URL, RollbackDatabase
from tests.workers.conftest import ScriptedEngine, install_scripted_worker
from workers import context


@pytest.fixture
def state(settings: Settings, db: RollbackDatabase, redis: Redis) -> AppState:
    with db.unit_of_work() as session:
        models_repo.upsert(session, settings.default_model, "transformers", None)
    return AppState(
        settings=settings,
        db=db,
        redis=redis,
        async_redis=AsyncRedis.from_url(TEST_REDIS_URL),
        queue=JobQueue(redis, settings.job_timeout_seconds),
    )


@pytest.fixture
def api_key(state: AppState) -> str:
    """A key of tenant ``default`` with every scope."""
    with state.db.unit_of_work() as session:
        _, token = create_key(session, "default", list(SCOPES), "tests")
    return token


@pytest.fixture
def client(state: AppState, api_key: str) -> Iterator[TestClient]:
    """The app, called with ``api_key`` (tests of authentication itself drop or replace the header)."""
    with TestClient(create_app(state=state), headers={"Authorization": f"Bearer {api_key}"}) as c:
        yield c


Reply = Callable[[Conversation], str]


@pytest.fixture
def worker(state: AppState, monkeypatch: pytest.MonkeyPatch) -> Callable[[Reply], ScriptedEngine]:
    """Install an in-process worker for the default model whose engine answers with ``reply``;
    then ``workers.tasks.run_job(job_id)`` runs a job against the test database."""
    monkeypatch.setattr(context, "_current", None)
    settings = state.settings.model_copy(update={"batch_size": 4, "job_lease_seconds": 600.0})

    def install(reply: Reply) -> ScriptedEngine:
        return install_scripted_worker(settings, state.db, state.queue, reply, "api-test-worker")

    return install
