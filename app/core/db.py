"""Database engine and unit of work.

A unit of work is one session and one transaction. Work that must only happen once the
transaction is durable (enqueueing a job, publishing an event) is registered with
:func:`after_commit` and runs right after the commit; a rollback drops it, so a failed request
never leaves a queued job behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

_AFTER_COMMIT = "after_commit_hooks"
# A pooled connection idle for longer than this is pinged before use (the server may have restarted or
# dropped it meanwhile); one used more recently goes straight to work, sparing every busy request a
# round trip. A connection that died within the window fails its statement, and SQLAlchemy then
# replaces every connection of the pool that predates the failure.
PING_AFTER_IDLE_SECONDS = 1.0


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the API read while the worker process writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        # The most recently used connection first: the few a steady load needs stay warm (no ping);
        # the rest idle.
        kwargs.setdefault("pool_use_lifo", True)
    engine = create_engine(url, **kwargs)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """``pool_pre_ping``, for connections idle longer than :data:`PING_AFTER_IDLE_SECONDS` only."""

    @event.listens_for(engine, "checkin")
    def _note_last_use(_dbapi_conn: Any, record: Any) -> None:
        record.info["last_used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last_used = record.info.get("last_used")
        if last_used is None or time.monotonic() - last_used <= PING_AFTER_IDLE_SECONDS:
            return  # just opened, or just used
        try:
            engine.dialect.do_ping(dbapi_conn)  # what pool_pre_ping runs
            if not getattr(dbapi_conn, "autocommit", True):
                dbapi_conn.rollback()  # end the transaction the ping began: the user may want autocommit
        except Exception as error:
            # The pool discards this connection and checks out another (a fresh one if need be).
            raise exc.DisconnectionError(f"pooled connection is dead: {error}") from error


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run ``hook`` once the session's current transaction has committed."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


def _run_after_commit(session: Session) -> None:
    hooks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
    for hook in hooks:
        try:
            hook()
        except Exception:
            # The data is committed; a failed hook (e.g. Redis briefly down) is repaired by the
            # worker's sweeper, which re-enqueues queued jobs that were never delivered.
            log.exception("after-commit hook failed")


class Database:
    """Owns the engine and hands out units of work."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine if engine is not None else make_engine(url)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        # Reads outside a transaction (autocommit): no BEGIN and COMMIT round trips.
        self._reading_factory = sessionmaker(
            bind=self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        session = self.session_factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            session.info.pop(_AFTER_COMMIT, None)
            raise
        else:
            _run_after_commit(session)
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only, each statement on its own (autocommit): cheaper than a unit of work,
        but its reads are not one snapshot. Fine for rows that no longer change (an ended job's results),
        or where each statement stands alone."""
        session = self._reading_factory()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
