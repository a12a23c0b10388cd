"""The dtype each model is served in, as its workers report it when they load it (the API never loads
a model, and a worker's ``JUDGE_DTYPE=auto`` depends on its own machine's CPU or GPU)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from redis import Redis

from app.engine.precision import Precision

# One hash: [queue, model] (JSON) → the latest load's dtype, its reason, the worker and when (JSON).
DTYPES_KEY = "judge.model-dtypes"


def report_precision(redis: Redis, queue: str, model: str, precision: Precision, worker: str) -> None:
    """Record that ``worker``, serving ``queue``, loaded ``model`` in ``precision``."""
    value = {
        "dtype": precision.dtype,
        "reason": precision.reason[:1000],
        "worker": worker,
        "at": datetime.now(UTC).isoformat(),
    }
    redis.hset(DTYPES_KEY, json.dumps([queue, model]), json.dumps(value))


def served_dtypes(redis: Redis) -> dict[str, str]:
    """Each model's dtype by name, from the latest load any worker reported (workers of one queue on
    different machines may differ: the latest says what the newest worker runs)."""
    raw: dict[bytes, bytes] = redis.hgetall(DTYPES_KEY)  # type: ignore[assignment]
    latest: dict[str, tuple[str, str]] = {}
    for field, value in raw.items():
        _, model = json.loads(field)
        report = json.loads(value)
        if model not in latest or report["at"] > latest[model][0]:
            latest[model] = (report["at"], report["dtype"])
    return {model: dtype for model, (_, dtype) in latest.items()}
