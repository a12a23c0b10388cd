"""Reading a job's event stream straight from Redis, for tests."""

from __future__ import annotations

import uuid
from typing import Any

from redis import Redis

from app.jobs.events import JobEvent, from_entry, stream_key


def stream_events(redis: Redis, job_id: uuid.UUID | str) -> list[JobEvent]:
    """Every event the job's stream holds, oldest first."""
    entries: Any = redis.xrange(stream_key(job_id))  # (redis-py's annotations miss stream replies)
    return [from_entry(entry_id, fields) for entry_id, fields in entries]
