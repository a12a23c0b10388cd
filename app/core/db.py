"""Database engine and unit of work.

A unit of work is one session and one transaction. Work that must only happen once the
transaction is durable (enqueueing a job, publishing an event) is registered with
:func:`after_commit` and runs right after the commit; a rollback drops it, so a failed request
never leaves a queued job behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

_AFTER_COMMIT = "after_commit_hooks"


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
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


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

    def dispose(self) -> None:
        self.engine.dispose()
