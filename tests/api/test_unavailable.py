"""A server the API needs is down: 503 with Retry-After (the client retries), never a 500 or a hang."""

from __future__ import annotations

from fastapi.testclient import TestClient
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.core.config import Settings
from app.core.db import Database
from app.core.state import AppState
from app.jobs.queue import JobQueue
from app.main import create_app
from tests.api.helpers import assert_error

DEAD_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"


def test_an_unreachable_database_is_503(settings: Settings, redis: Redis, api_key: str) -> None:
    state = AppState(
        settings=settings,
        db=Database(DEAD_DATABASE),
        redis=redis,
        async_redis=AsyncRedis.from_url(settings.redis_url or ""),
        queue=JobQueue(redis, 60),
    )
    headers = {"Authorization": f"Bearer {api_key}"}
    with TestClient(create_app(state=state), raise_server_exceptions=False, headers=headers) as client:
        for method, path in (("get", "/v1/jobs"), ("post", "/v1/judgments/pairwise")):
            response = client.request(
                method, path, json={"items": [{"question": "q", "answer_a": "a", "answer_b": "b"}]}
            )
            error = assert_error(response, 503, "unavailable", None)
            assert "database" in error["message"]
            assert response.headers["Retry-After"] == "5"
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
