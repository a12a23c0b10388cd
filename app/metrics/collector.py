"""Figures read at scrape time: the workers' (from Redis), queue depth (RQ) and jobs by state and kind
(Postgres, cached briefly). A source that cannot be read is reported by ``judge_metrics_source_up``
instead of failing the whole scrape, so the request figures still arrive during an outage."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import get_args

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy.exc import SQLAlchemyError

from app.core.state import AppState
from app.jobs import kinds
from app.jobs import repository as jobs_repo
from app.jobs.schemas import JobStatus
from app.metrics import families as fam

log = logging.getLogger(__name__)


class ServiceCollector(Collector):
    def __init__(
        self,
        state: Callable[[], AppState],
        jobs_cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state
        self._jobs_cache_seconds = jobs_cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: tuple[float, list[tuple[str, str, int]]] | None = None

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        up = GaugeMetricFamily(
            "judge_metrics_source_up",
            "Whether this scrape could read a source of figures (redis: worker figures and queue depth; "
            "database: jobs by state).",
            labels=["source"],
        )
        try:
            worker_metrics = self._worker_metrics(state)
            queues = self._queue_depth(state)
        except RedisError as exc:
            log.warning("metrics: Redis unreadable: %s", exc)
            up.add_metric(["redis"], 0)
        else:
            up.add_metric(["redis"], 1)
            yield from worker_metrics
            yield queues
        try:
            jobs = self._jobs_by_state(state)
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreadable: %s", exc)
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            yield jobs
        yield up

    def _worker_metrics(self, state: AppState) -> list[Metric]:
        out = fam.to_metric_families(state.redis.hgetall(fam.WORKER_HASH))  # type: ignore[arg-type]
        slots = fam.recent_slots(time.time())
        counts = state.redis.mget([fam.RECENT_KEY_PREFIX + str(slot) for slot in slots])
        recent = GaugeMetricFamily(
            "judge_judgments_per_second",
            f"Judge outputs per second over the last {fam.WINDOW_SECONDS} s, all workers together.",
        )
        recent.add_metric([], fam.per_second(int(c) if c is not None else None for c in counts))
        return [*out, recent]

    def _queue_depth(self, state: AppState) -> Metric:
        depth = GaugeMetricFamily(
            "judge_queue_depth",
            "Job deliveries waiting in each model's RQ queue (a delivery of a job that another worker "
            "already fused into its batch waits here until it is skipped).",
            labels=["queue"],
        )
        for queue in sorted(Queue.all(connection=state.redis), key=lambda q: q.name):
            depth.add_metric([queue.name], queue.count)
        return depth

    def _jobs_by_state(self, state: AppState) -> Metric:
        gauge = GaugeMetricFamily(
            "judge_jobs", "Jobs by state and kind, every tenant together.", labels=["state", "kind"]
        )
        counts = {(status, kind): n for status, kind, n in self._cached_job_counts(state)}
        # Every known combination is always present (a series that vanishes at 0 confuses rate and
        # alert rules); unknown ones (a newer kind) are added.
        for status in get_args(JobStatus):
            for kind in kinds.names():
                counts.setdefault((status, kind), 0)
        for (status, kind), n in sorted(counts.items()):
            gauge.add_metric([status, kind], n)
        return gauge

    def _cached_job_counts(self, state: AppState) -> list[tuple[str, str, int]]:
        with self._lock:
            now = self._clock()
            if self._jobs is None or now - self._jobs[0] >= self._jobs_cache_seconds:
                with state.db.unit_of_work() as session:
                    self._jobs = (now, jobs_repo.count_by_status_kind(session))
            return self._jobs[1]
