"""Whether a model can be served, so that jobs for one that cannot are refused with the reason instead
of waiting in a queue no worker takes.

Two sources: what workers report (a worker that cannot load a model, its own at start or one it loads on
demand, records why in Redis; a load of that model by a worker of the same queue, or registering the model
again, clears it), and what this machine's disk says of the model's registered folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis

from app.core.errors import ApiError
from app.engine.precision import Precision
from app.jobs.queue import queue_name
from app.models.service import Route
from app.models.serving import report_precision

log = logging.getLogger(__name__)

# One hash for every report: [queue, model] (JSON) → the standing failure (JSON).
REPORTS_KEY = "judge.model-load-failures"


class ModelUnavailable(ApiError):
    """503: the model's jobs cannot run now (the message says why)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(503, "model_unavailable", message, field)


@dataclass(frozen=True)
class LoadFailure:
    """A report that the workers of ``queue`` could not load ``model``: ``since`` the first report of
    this failure, ``at`` the latest (a worker restarted in a loop reports it again and again)."""

    queue: str
    model: str
    reason: str
    worker: str
    since: datetime
    at: datetime

    @property
    def blocks_queue(self) -> bool:
        """Whether it is the queue's own model: its workers cannot start, so no job of the queue runs
        (a descendant's or a second model's failure keeps only that model's jobs from running)."""
        return queue_name(self.model) == self.queue

    def holds(self, queue: str, model: str) -> bool:
        """Whether it keeps jobs for ``model`` on ``queue`` from running."""
        return self.queue == queue and (self.model == model or self.blocks_queue)

    def describe(self) -> str:
        return f"model '{self.model}' cannot be loaded by its workers: {self.reason}"


def _field(queue: str, model: str) -> str:
    return json.dumps([queue, model])


def _parse(raw: bytes | str) -> LoadFailure:
    value = json.loads(raw)
    return LoadFailure(
        value["queue"],
        value["model"],
        value["reason"],
        value["worker"],
        datetime.fromisoformat(value["since"]),
        datetime.fromisoformat(value["at"]),
    )


def report_load_failure(redis: Redis, queue: str, model: str, reason: str, worker: str) -> None:
    """Record that ``worker``, serving ``queue``, could not load ``model``; a standing report of the same
    failure keeps its ``since``."""
    field = _field(queue, model)
    now = datetime.now(UTC).isoformat()
    earlier = redis.hget(REPORTS_KEY, field)
    since = json.loads(earlier)["since"] if earlier is not None else now
    value = {
        "queue": queue,
        "model": model,
        "reason": reason[:1000],
        "worker": worker,
        "since": since,
        "at": now,
    }
    redis.hset(REPORTS_KEY, field, json.dumps(value))


def clear_load_failure(redis: Redis, model: str, queue: str | None = None) -> None:
    """``model`` was loaded by a worker of ``queue`` (None: registered again, so every queue's reports
    of it no longer hold)."""
    if queue is not None:
        redis.hdel(REPORTS_KEY, _field(queue, model))
        return
    stale = [_field(f.queue, f.model) for f in load_failures(redis) if f.model == model]
    if stale:
        redis.hdel(REPORTS_KEY, *stale)


def load_failures(redis: Redis) -> list[LoadFailure]:
    """Every standing report, by queue and model."""
    raw: dict[bytes, bytes] = redis.hgetall(REPORTS_KEY)  # type: ignore[assignment]
    return sorted((_parse(v) for v in raw.values()), key=lambda f: (f.queue, f.model))


def load_failure(redis: Redis, queue: str, model: str) -> LoadFailure | None:
    """The standing report that keeps jobs for ``model`` on ``queue`` from running, if any (the queue's
    own model's first)."""
    held = [f for f in load_failures(redis) if f.holds(queue, model)]
    return min(held, key=lambda f: not f.blocks_queue) if held else None


class LoadReports:
    """What one worker reports of the models it loads: its own at start, and the ones it loads on demand
    (a trained descendant's weights, a long job's second model). Reporting never hides the load's own
    error: a Redis that cannot be reached is logged."""

    def __init__(self, redis: Redis, queue: str, worker: str) -> None:
        self.redis = redis
        self.queue = queue
        self.worker = worker

    def failed(self, model: str, error: BaseException) -> None:
        try:
            report_load_failure(
                self.redis, self.queue, model, f"{type(error).__name__}: {error}", self.worker
            )
        except Exception:
            log.exception("could not report that model %s failed to load", model)

    def loaded(self, model: str, precision: Precision | None = None) -> None:
        """``model`` loaded: its failures are cleared, and the dtype it is served in (``precision``,
        when the engine says) recorded for ``GET /v1/models``."""
        try:
            clear_load_failure(self.redis, model, self.queue)
            if precision is not None:
                report_precision(self.redis, self.queue, model, precision, self.worker)
        except Exception:
            log.exception("could not report that model %s was loaded", model)


def folder_problem(artifact_path: str | None) -> str | None:
    """Why the model's registered folder cannot be loaded, as far as this machine can tell: it is gone.
    None when it is there (whether it loads is for its workers to say), or when this machine does not
    see the disk it was registered on (its parent folder is absent here too)."""
    if artifact_path is None:
        return None
    folder = Path(artifact_path)
    if folder.exists() or not folder.parent.is_dir():
        return None
    return f"its folder {folder} is missing"


def check_servable(redis: Redis, route: Route, field: str) -> None:
    """Raise ModelUnavailable (503, naming ``field``) when jobs for ``route``'s model cannot run: its
    folder is missing, or its queue's workers reported that they cannot load it."""
    problem = folder_problem(route.local_artifact)
    if problem is not None:
        raise ModelUnavailable(f"model '{route.name}' cannot be served: {problem}", field)
    failure = load_failure(redis, route.queue, route.name)
    if failure is not None:
        raise ModelUnavailable(failure.describe(), field)
