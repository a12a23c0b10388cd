"""What a worker process holds for its whole life: settings, database, queue and one engine."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import Settings
from app.core.db import Database
from app.engine.base import Engine
from app.jobs.queue import JobQueue

_current: WorkerContext | None = None


@dataclass
class WorkerContext:
    settings: Settings
    db: Database
    queue: JobQueue
    engine: Engine
    model: str
    queue_name: str
    worker_id: str


def install(ctx: WorkerContext) -> None:
    global _current
    _current = ctx


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context: jobs run inside `judge worker`")
    return _current
