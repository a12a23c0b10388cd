"""Job events in their Redis stream: entry encoding, stream ids, the cap and the expiry."""

from __future__ import annotations

import uuid

import pytest
from redis import Redis

from app.jobs.events import (
    ACTIVE_TTL_SECONDS,
    EventLog,
    from_entry,
    is_stream_id,
    stream_key,
    stream_order,
    to_fields,
)
from tests.jobs.streams import stream_events


def test_an_event_survives_the_round_trip_through_a_stream_entry() -> None:
    data = {"status": "queued", "error": "engine fell over", "n": [1, 2]}
    fields = {k.encode(): v.encode() for k, v in to_fields("status", data).items()}
    event = from_entry(b"17-2", fields)
    assert (event.name, event.data, event.id) == ("status", data, "17-2")


@pytest.mark.parametrize(
    ("value", "valid"),
    [("0-0", True), ("1700000000000-12", True), ("17", False), ("a-1", False), ("1-2-3", False), ("", False)],
)
def test_stream_ids(value: str, valid: bool) -> None:
    assert is_stream_id(value) is valid


def test_stream_ids_order_by_time_then_sequence_not_as_text() -> None:
    assert stream_order("9-0") < stream_order("10-0") < stream_order("10-1") < stream_order("10-10")


def test_appends_keep_order_are_capped_and_expire(redis: Redis) -> None:
    log = EventLog(redis, max_len=10, ttl_after_end_seconds=60)
    job_id = uuid.uuid4()
    for done in range(500):
        log.append(job_id, "progress", {"done": done, "total": 500})
    kept = [event.data["done"] for event in stream_events(redis, job_id)]
    # Approximate trimming keeps at least the cap, and far fewer than were added.
    assert 10 <= len(kept) < 500
    assert kept == sorted(kept) and kept[-1] == 499
    assert ACTIVE_TTL_SECONDS - 5 < redis.ttl(stream_key(job_id)) <= ACTIVE_TTL_SECONDS
    log.append(job_id, "end", {"status": "succeeded"})
    # Once the job ended, listeners only need a while to catch up.
    assert 0 < redis.ttl(stream_key(job_id)) <= 60
