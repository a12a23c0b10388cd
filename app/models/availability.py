"""Whether a model can be served, so that jobs for one that cannot are refused with the reason instead
of waiting in a queue no worker takes.

Two sources: what workers report (a worker that cannot load its model records why, in Redis, under its
queue's name, and clears it once a worker loads the model), and what this machine's disk says of the
model's registered folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis

from app.core.errors import ApiError
from app.models.service import Route

# One hash for every queue: queue name → the last failure a worker reported (JSON).
REPORTS_KEY = "judge.model-load-failures"


class ModelUnavailable(ApiError):
    """503: the model's jobs cannot run now (the message says why)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(503, "model_unavailable", message, field)


@dataclass(frozen=True)
class LoadFailure:
    """A worker's report that it could not load the model of ``queue``."""

    queue: str
    model: str
    reason: str
    worker: str
    at: datetime

    def describe(self) -> str:
        return f"model '{self.model}' cannot be loaded by its workers: {self.reason}"


def report_load_failure(redis: Redis, queue: str, model: str, reason: str, worker: str) -> None:
    """Record that ``worker`` could not load ``model`` (served on ``queue``)."""
    value = {"model": model, "reason": reason[:1000], "worker": worker, "at": datetime.now(UTC).isoformat()}
    redis.hset(REPORTS_KEY, queue, json.dumps(value))


def clear_load_failure(redis: Redis, queue: str) -> None:
    """A worker loaded ``queue``'s model: earlier reports no longer hold."""
    redis.hdel(REPORTS_KEY, queue)


def _parse(queue: str, raw: bytes | str) -> LoadFailure:
    value = json.loads(raw)
    return LoadFailure(
        queue, value["model"], value["reason"], value["worker"], datetime.fromisoformat(value["at"])
    )


def load_failure(redis: Redis, queue: str) -> LoadFailure | None:
    """The standing report for ``queue``, if any (one round trip)."""
    raw = redis.hget(REPORTS_KEY, queue)
    return _parse(queue, raw) if raw is not None else None


def load_failures(redis: Redis) -> list[LoadFailure]:
    """Every standing report, by queue name."""
    raw: dict[bytes, bytes] = redis.hgetall(REPORTS_KEY)  # type: ignore[assignment]
    return sorted((_parse(q.decode(), v) for q, v in raw.items()), key=lambda f: f.queue)


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
    failure = load_failure(redis, route.queue)
    if failure is not None:
        raise ModelUnavailable(failure.describe(), field)
