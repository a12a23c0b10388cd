"""What a worker process holds for its whole life: settings, database, queue and one engine."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.core.config import Settings
from app.core.db import Database
from app.engine.base import Engine
from app.jobs.queue import JobQueue
from app.metrics.recorder import WorkerMetrics
from workers.metered import MeteredEngine

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
    # The local folder of a model trained from ``model`` (its jobs come through this worker's queue),
    # and the root of a model's lineage.
    family_path: Callable[[str], Path] | None = None
    family_of: Callable[[str], str | None] | None = None
    extra_engines: OrderedDict[str, Engine] = field(default_factory=OrderedDict)
    # Set when the worker is asked to stop (SIGTERM): running work finishes its current batch or step
    # and hands its jobs back to the queue.
    shutdown: threading.Event = field(default_factory=threading.Event)
    # Whose weights ``engine`` holds now: ``model``, or a descendant it swapped to.
    loaded_model: str = ""
    # Batch sizes, model latency and judgments, recorded in the Redis that delivers the jobs (the API
    # exposes them on /metrics).
    metrics: WorkerMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.loaded_model = self.loaded_model or self.model
        self.metrics = WorkerMetrics(self.queue.redis)

    def engine_for(self, model: str) -> Engine:
        """The engine serving ``model``: this worker's own (swapping its weights to ``model`` when that
        is this worker's model or one trained from it), or another engine loaded on demand (the least
        recently used is closed when more than ``settings.max_extra_engines`` are held). Every call
        through it is measured."""
        return MeteredEngine(self._engine_for(model), model, self.metrics)

    def _engine_for(self, model: str) -> Engine:
        if model == self.loaded_model:
            return self.engine
        if model == self.model or self._in_family(model):
            path = self.family_path(model) if self.family_path is not None else None
            if path is None:
                raise RuntimeError(f"no local weights for {model!r}")
            self.engine.load_weights(path, model)
            self.loaded_model = model
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

    def _in_family(self, model: str) -> bool:
        if self.family_of is None:
            return False
        return self.family_of(model) == self.model


def install(ctx: WorkerContext) -> None:
    global _current
    _current = ctx


def has_current() -> bool:
    return _current is not None


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context: jobs run inside `judge worker`")
    return _current
