"""Live job events: each change to a job (status, progress, stage, end) is appended, once committed, to a
capped per-job Redis stream that `GET /v1/jobs/{id}/events` replays and follows.

Postgres stays the truth about a job; the stream only tells listeners what changed, in order, with ids
they can resume from (Redis stream ids, ``<ms>-<seq>``).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from redis import Redis
from redis.client import Pipeline

from app.db.tables import Job

EventName = Literal["state", "status", "progress", "stage", "end"]

# A stream whose job never ends (its row deleted, say) still goes away after a week without events.
ACTIVE_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_MAX_LEN = 1000
DEFAULT_TTL_AFTER_END_SECONDS = 3600
# The id of "before any event": following from it yields every event the stream holds.
ORIGIN = "0-0"
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


@dataclass(frozen=True)
class JobEvent:
    name: str
    data: dict[str, Any]
    # The stream id (None for an event not read from the stream).
    id: str | None = None


def stream_key(job_id: uuid.UUID | str) -> str:
    return f"judge:job-events:{job_id}"


def is_stream_id(value: str) -> bool:
    return bool(_STREAM_ID.match(value))


def stream_order(stream_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair (``"12-3"`` → ``(12, 3)``)."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def to_fields(name: str, data: dict[str, Any]) -> dict[str, str]:
    """A stream entry's fields for an event."""
    return {"event": name, "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False)}


def from_entry(entry_id: bytes | str, fields: dict[Any, Any]) -> JobEvent:
    """The event a stream entry holds."""

    def text(value: bytes | str) -> str:
        return value.decode() if isinstance(value, bytes) else value

    values = {text(k): text(v) for k, v in fields.items()}
    return JobEvent(name=values["event"], data=json.loads(values["data"]), id=text(entry_id))


def end_data(job: Job) -> dict[str, Any]:
    """What an `end` event says: how the job ended."""
    return {
        "status": job.status,
        "error": job.error,
        "progress": {"done": job.progress_done, "total": job.progress_total, "failed": job.progress_failed},
        "finished_at": job.finished_at.isoformat() if job.finished_at is not None else None,
    }


class EventLog:
    """Appends job events to their streams (synchronous Redis: workers and the API's commit hooks)."""

    def __init__(
        self,
        redis: Redis,
        max_len: int = DEFAULT_MAX_LEN,
        ttl_after_end_seconds: int = DEFAULT_TTL_AFTER_END_SECONDS,
    ) -> None:
        self.redis = redis
        self.max_len = max_len
        self.ttl_after_end_seconds = ttl_after_end_seconds

    def append(self, job_id: uuid.UUID, name: EventName, data: dict[str, Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        self.append_in(pipe, job_id, name, data)
        pipe.execute()

    def append_in(self, pipe: Pipeline, job_id: uuid.UUID, name: EventName, data: dict[str, Any]) -> None:
        """Queue the append on ``pipe`` (sent with whatever else the caller adds to it)."""
        key = stream_key(job_id)
        pipe.xadd(key, to_fields(name, data), maxlen=self.max_len, approximate=True)  # type: ignore[arg-type]
        # After the end, listeners only need the stream long enough to catch up.
        pipe.expire(key, self.ttl_after_end_seconds if name == "end" else ACTIVE_TTL_SECONDS)
