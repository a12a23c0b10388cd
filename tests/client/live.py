"""A live judge service for client and CLI tests: the real app under uvicorn on a free port, on a
migrated scratch Postgres database and the test Redis, with an in-process worker thread whose engine
is scripted. Only delivery is replaced: job ids go to the worker thread instead of RQ."""

from __future__ import annotations

import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.config import Settings
from app.core.db import Database
from app.core.migrate import upgrade
from app.core.state import AppState
from app.engine.base import Conversation
from app.jobs.queue import JobQueue
from app.main import create_app
from app.models import repository as models_repo
from tests.conftest import scratch_database
from tests.workers.conftest import ScriptedEngine, install_scripted_worker, user_text
from workers import context
from workers.tasks import run_job

Reply = Callable[[Conversation], str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def migrated_scratch(name: str) -> str:
    """A fresh scratch database migrated to head."""
    url = scratch_database(name)
    upgrade(url)
    return url


def scripted_judge(conv: Conversation) -> str:
    """Pairwise: prefers the longer answer (multi-turn: conversation) wherever it is shown (equal lengths:
    the second shown, so the two orders disagree). Grading: the answer's length in words, at most 10."""
    if conv[-1]["content"].startswith("Rating"):
        answer = re.search(r"=== Answer ===\n(.*?)\n=== End of answer ===", user_text(conv), re.S)
        words = len(answer.group(1).split()) if answer else 1
        return f"{min(10, max(1, words))}]]"
    text = user_text(conv)
    a, b = (
        re.search(rf"=== (?:Answer|Conversation with Assistant) {s} ===\n(.*?)\n=== End of", text, re.S)
        for s in "AB"
    )
    assert a and b, text
    return "A]]" if len(a.group(1)) > len(b.group(1)) else "B]]"


class _ThreadDelivery(JobQueue):
    """Hands job ids to the worker thread (RQ's worker wants the main thread)."""

    def __init__(self, redis: Redis, pending: queue.Queue[str]) -> None:
        super().__init__(redis, 3600)
        self.pending = pending

    def enqueue(self, job_id: uuid.UUID, queue: str, attempt: int = 0) -> None:
        self.pending.put(str(job_id))


@dataclass
class LiveService:
    url: str
    key: str
    tenant: str
    state: AppState
    engine: ScriptedEngine
    # Cleared: delivered jobs wait (stay queued) until it is set again.
    running: threading.Event = field(default_factory=threading.Event)

    def release_when(self, seen: Callable[[], bool], then: float = 0.0, limit: float = 30.0) -> None:
        """Sets `running` `then` seconds after `seen()` first holds (at most `limit` s from now).

        Tied to what the client did, not to a timer: on a loaded machine a request can take longer
        than any fixed delay, and the job would then end before the client got to the step under test.
        """

        def release() -> None:
            deadline = time.monotonic() + limit
            while not seen() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(then)
            self.running.set()

        threading.Thread(target=release, daemon=True).start()

    def new_key(self, scopes: list[str], tenant: str | None = None) -> str:
        with self.state.db.unit_of_work() as session:
            _, token = create_key(session, tenant or self.tenant, scopes, "live test")
        return token


def _work(pending: queue.Queue[str], running: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            job_id = pending.get(timeout=0.05)
        except queue.Empty:
            continue
        while not running.wait(0.05):
            if stop.is_set():
                return
        run_job(job_id)


@contextmanager
def live_service(
    db_url: str, redis_url: str, data_dir: Path, reply: Reply = scripted_judge
) -> Iterator[LiveService]:
    settings = Settings(
        data_dir=data_dir,
        database_url=db_url,
        redis_url=redis_url,
        batch_size=2,
        max_items=50,
        job_lease_seconds=600.0,
        rate_limit_per_second=0,
    )
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    db = Database(settings.sqlalchemy_url)
    pending: queue.Queue[str] = queue.Queue()
    state = AppState(settings, db, redis, AsyncRedis.from_url(redis_url), _ThreadDelivery(redis, pending))
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    with db.unit_of_work() as session:
        models_repo.upsert(session, settings.default_model, "transformers", None)
        _, key = create_key(session, tenant, list(SCOPES), "live test")

    previous = context._current
    engine = install_scripted_worker(settings, db, state.queue, reply, f"live-{tenant}")
    running, stop = threading.Event(), threading.Event()
    running.set()
    worker = threading.Thread(target=_work, args=(pending, running, stop), daemon=True)
    worker.start()

    port = free_port()
    config = uvicorn.Config(
        create_app(state=state), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test service did not start")
        time.sleep(0.02)
    try:
        yield LiveService(f"http://127.0.0.1:{port}", key, tenant, state, engine, running)
    finally:
        server.should_exit = True
        thread.join(10)
        stop.set()
        running.set()
        worker.join(10)
        context._current = previous
        redis.close()
        db.dispose()
