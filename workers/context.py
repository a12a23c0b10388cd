"""What a worker process holds for its whole life: settings, database, queue and one engine."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

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
    # Builds an engine for another model (a long job's second model); None: only ``model`` is served.
    load_engine: Callable[[str], Engine] | None = None
    extra_engines: OrderedDict[str, Engine] = field(default_factory=OrderedDict)

    def engine_for(self, model: str) -> Engine:
        """The engine serving ``model``: this worker's own, or another one loaded on demand (the least
        recently used is closed when more than ``settings.max_extra_engines`` are held)."""
        if model == self.model:
            return self.engine
        if model in self.extra_engines:
            self.extra_engines.move_to_end(model)
            return self.extra_engines[model]
        if self.load_engine is None or self.settings.max_extra_engines < 1:
            raise RuntimeError(f"this worker serves {self.model!r} and cannot load {model!r}")
        while len(self.extra_engines) >= self.settings.max_extra_engines:
            _, old = self.extra_engines.popitem(last=False)
            old.close()
        engine = self.load_engine(model)
        self.extra_engines[model] = engine
        return engine


def install(ctx: WorkerContext) -> None:
    global _current
    _current = ctx


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context: jobs run inside `judge worker`")
    return _current
