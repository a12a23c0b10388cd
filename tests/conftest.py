"""Shared fixtures: the real Postgres and Redis (URLs from TEST_DATABASE_URL / TEST_REDIS_URL)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import Database, _run_after_commit
from app.core.migrate import downgrade, upgrade

# A suite started in the background by a shell without job control (`cmd &` in a script) inherits SIGINT
# ignored, and so would every process the tests start: the Ctrl-C tests (a `judge` command or `judge
# serve` interrupted like a terminal would) need it delivered. A Python handler, unlike "ignored", is
# not inherited across exec: the processes the tests start get the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# The end-to-end services' Redis database (another run in parallel sets its own).
TEST_E2E_REDIS_URL = os.environ.get("TEST_E2E_REDIS_URL", TEST_REDIS_URL.rsplit("/", 1)[0] + "/14")


def scratch_database(name: str) -> str:
    """Drop and re-create database ``name`` on the test server; return its URL. Test runs on another
    test database (parallel runs) get their own scratch databases: its name is appended."""
    own = make_url(TEST_DATABASE_URL).database
    if own and own != "test":
        name = f"{name}_{own}"
    admin_url = make_url(TEST_DATABASE_URL).set(database="postgres")
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_url() -> str:
    """The test database, emptied and migrated to head once per test session."""
    downgrade(TEST_DATABASE_URL, "base")
    engine = create_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    upgrade(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
def committing_url() -> str:
    """A database of its own, migrated once per session, for tests that need real commits seen by
    several connections at once (concurrent deliverers, a live server). Rows outlive the test: tests
    using it create their own."""
    url = scratch_database("judge_test_committing")
    upgrade(url)
    return url


class RollbackDatabase(Database):
    """Every unit of work runs in a savepoint of one outer transaction that the test rolls back."""

    def __init__(self, url: str, connection: Connection) -> None:
        super().__init__(url, engine=connection.engine)
        self.connection = connection

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        session = Session(
            bind=self.connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            session.info.clear()
            raise
        else:
            _run_after_commit(session)
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:  # (the test's rows are only seen inside its transaction)
        with self.unit_of_work() as session:
            yield session

    def dispose(self) -> None:  # the engine belongs to the fixture
        pass


@pytest.fixture
def db(migrated_url: str) -> Iterator[RollbackDatabase]:
    engine = create_engine(migrated_url)
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield RollbackDatabase(migrated_url, conn)
        finally:
            outer.rollback()
    engine.dispose()


@pytest.fixture
def redis() -> Iterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=TEST_DATABASE_URL,
        redis_url=TEST_REDIS_URL,
        max_items=50,
        max_body_bytes=256 * 1024,
        # The tests' webhook receivers listen on loopback.
        webhook_private_addresses=True,
        # (the item size limit is tested on its own; here it would hide the body limit)
        max_prompt_chars=1024 * 1024,
    )
