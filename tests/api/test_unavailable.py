"""A server the API needs is down: 503 with Retry-After (the client retries), never a 500 or a hang."""

from __future__ import annotations

import errno

import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import create_engine, text

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import install_error_handlers
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


def _disk_full_database_error() -> Exception:
    """SQLite's real SQLITE_FULL, as SQLAlchemy raises it."""
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            conn.execute(text("PRAGMA max_page_count = 2"))
            conn.execute(text("CREATE TABLE t (x TEXT)"))
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 100_000})
    except sqlalchemy.exc.OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the insert did not fill the database")


def test_a_full_disk_is_503_saying_so_not_an_unreachable_database_or_a_500() -> None:
    app = FastAPI()
    install_error_handlers(app)
    database_full = _disk_full_database_error()

    @app.get("/database")
    def database() -> None:
        raise database_full

    @app.get("/file")
    def file() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with TestClient(app, raise_server_exceptions=False) as client:
        for path in ("/database", "/file"):
            response = client.get(path)
            error = assert_error(response, 503, "unavailable", None)
            assert error["message"] == "the server's disk is full; retry later", path
            assert response.headers["Retry-After"] == "60"
