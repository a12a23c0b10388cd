"""What a worker process holds for its whole life: settings, database, queue, its engines and the
scheduler that alone calls them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.config import Settings
from app.core.db import Database
from app.engine.base import Engine
from app.jobs.queue import JobQueue
from app.metrics.model_labels import ModelLabels
from app.metrics.recorder import WorkerMetrics
from app.models.availability import LoadReports
from app.scheduling.policy import Limits, Priority
from workers.engines import EnginePool, default_batch_tokens
from workers.scheduled_engine import ScheduledEngine
from workers.scheduler import InferenceScheduler

if TYPE_CHECKING:
    from workers.lease import LeaseKeeper
    from workers.long_jobs import LongJobs

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
    # The model whose engine serves a model's weights (names registered for the same folder share one).
    weights_owner: Callable[[str], str] | None = None
    # Set when the worker is asked to stop (SIGTERM): running work finishes its current batch or step
    # and hands its jobs back to the queue.
    shutdown: threading.Event = field(default_factory=threading.Event)
    # Batch sizes, model latency and judgments, recorded in the Redis that delivers the jobs (the API
    # exposes them on /metrics).
    metrics: WorkerMetrics = field(init=False)
    # The engines, and the scheduler that alone calls them. Inline until the worker starts it.
    engines: EnginePool = field(init=False)
    scheduler: InferenceScheduler = field(init=False)
    # The worker's long-job orchestrators and its one lease keeper (`judge worker` sets them; without
    # them a job runs to its end inside ``run_job``, as the in-process tests do).
    long_jobs: LongJobs | None = None
    lease: LeaseKeeper | None = None

    def __post_init__(self) -> None:
        self.metrics = WorkerMetrics(self.queue.redis, ModelLabels(self.db))
        self.engines = EnginePool(
            self.engine,
            self.model,
            self.settings.max_extra_engines,
            self.load_engine,
            self.family_path,
            self.family_of,
            LoadReports(self.queue.redis, self.queue_name, self.worker_id),
            self.weights_owner,
        )
        limits = Limits(
            rows=self.settings.batch_size,
            tokens=self.settings.batch_tokens or default_batch_tokens(self.engine),
            aging_s=self.settings.scheduler_aging_seconds,
        )
        self.scheduler = InferenceScheduler(self.engines, limits, self.metrics)

    def engine_for(
        self,
        model: str,
        priority: Priority = Priority.BACKGROUND,
        tenant: str = "",
        job_id: uuid.UUID | None = None,
    ) -> Engine:
        """``model`` as one job sees it: every call is a request of ``priority`` to the scheduler."""
        return ScheduledEngine(self.scheduler, model, priority, tenant, job_id)


def install(ctx: WorkerContext) -> None:
    global _current
    _current = ctx


def has_current() -> bool:
    return _current is not None


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context: jobs run inside `judge worker`")
    return _current
