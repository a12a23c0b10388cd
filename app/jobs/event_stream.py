"""The live event stream of one job (`GET /v1/jobs/{id}/events`): the job's state from the database, then
its events from Redis as they come, until the job ends.

Nothing is missed by a late or returning client: a new connection notes where the job's stream ends
*before* reading the job, so every later change is in the stream after that point; a reconnection with
``Last-Event-ID`` replays the stream from there, or, when the stream can no longer vouch for every event
since (trimmed or expired), starts again from the job's current state.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ResponseError

from app.core.db import Database
from app.core.errors import NotFound
from app.jobs import service as jobs_service
from app.jobs import sse
from app.jobs.events import ORIGIN, JobEvent, end_data, from_entry, stream_key, stream_order

RECONNECT_MILLISECONDS = 3000
_READ_COUNT = 100
# A blocking read waits at most this share of the client's socket timeout: redis-py ends any read that
# takes longer than the timeout (5 s by default) with a TimeoutError, whatever block the command asked.
_BLOCK_SHARE_OF_SOCKET_TIMEOUT = 0.5


@dataclass(frozen=True)
class JobView:
    """What the stream needs of the job row."""

    state: dict[str, Any]
    end: dict[str, Any]
    ended: bool

    def opening_events(self, stream_id: str) -> list[JobEvent]:
        events = [JobEvent("state", self.state, stream_id)]
        if self.ended:
            events.append(JobEvent("end", self.end, stream_id))
        return events


@dataclass(frozen=True)
class Opening:
    """How a connection starts: ``first`` is sent at once, then the stream is followed after ``cursor``
    unless ``done``."""

    cursor: str
    first: list[JobEvent] = field(default_factory=list)
    done: bool = False


async def _view(db: Database, job_id: uuid.UUID, tenant: str) -> JobView:
    """The job as it is now (404 when the tenant has no such job)."""

    def read() -> JobView:
        with db.unit_of_work() as session:
            job = jobs_service.get_job(session, job_id, tenant)
            state = jobs_service.job_out(job).model_dump(mode="json", exclude={"params", "results"})
            return JobView(state=state, end=end_data(job), ended=job.status in jobs_service.TERMINAL)

    return await asyncio.to_thread(read)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _last_id(redis: AsyncRedis, key: str) -> str:
    # (redis-py's annotations do not describe stream replies)
    last: Any = await redis.xrevrange(key, count=1)
    return _text(last[0][0]) if last else ORIGIN


async def _holds_everything_after(redis: AsyncRedis, key: str, last_id: str) -> bool:
    """Whether the stream still holds every event after ``last_id`` (it is only ever trimmed from its
    oldest end, and expires as a whole)."""
    try:
        info: Any = await redis.xinfo_stream(key)
    except ResponseError:
        return False  # no stream: expired, lost, or nothing happened yet
    first = info.get("first-entry")
    if not first:
        return False
    if stream_order(_text(first[0])) <= stream_order(last_id):
        return True
    # The oldest event kept is newer than the client's: fine only if nothing was ever trimmed.
    added = info.get("entries-added")
    return added is not None and int(added) == int(info.get("length", -1))


async def _block_seconds(redis: AsyncRedis, wanted: float) -> float:
    """How long one blocking read on ``redis`` may wait: ``wanted``, within the client's socket timeout.
    The timeout is the one its connections have: a client made without one (``from_url(url)``) does not
    name it in its pool's settings, yet its connections get redis-py's default."""
    pool = redis.connection_pool
    connection = await pool.get_connection()
    try:
        timeout = connection.socket_timeout
    finally:
        await pool.release(connection)
    return wanted if timeout is None else min(wanted, float(timeout) * _BLOCK_SHARE_OF_SOCKET_TIMEOUT)


async def _events_after(redis: AsyncRedis, key: str, cursor: str, block_ms: int | None) -> list[JobEvent]:
    reply: Any = await redis.xread({key: cursor}, count=_READ_COUNT, block=block_ms)
    if not reply:
        return []
    [(_, entries)] = reply
    return [from_entry(entry_id, fields) for entry_id, fields in entries]


async def open_stream(
    db: Database, redis: AsyncRedis, job_id: uuid.UUID, tenant: str, last_event_id: str | None
) -> Opening | None:
    """Decide how a connection starts; None when a resuming client already saw the job's end (answer
    204, which tells an EventSource to stop reconnecting). Raises NotFound before anything is sent."""
    key = stream_key(job_id)
    if last_event_id is not None and await _holds_everything_after(redis, key, last_event_id):
        view = await _view(db, job_id, tenant)
        if not view.ended:
            return Opening(cursor=last_event_id)
        # The job is over: the rest of the stream is all there is.
        rest = await _events_after(redis, key, last_event_id, None)
        if not rest:
            return None
        if rest[-1].name != "end":
            rest.extend(view.opening_events(rest[-1].id or last_event_id))
        return Opening(cursor=last_event_id, first=rest, done=True)
    # Where the stream ends *before* the job is read: any later change is in the stream after it.
    cursor = await _last_id(redis, key)
    view = await _view(db, job_id, tenant)
    return Opening(cursor=cursor, first=view.opening_events(cursor), done=view.ended)


async def follow(
    db: Database,
    redis: AsyncRedis,
    job_id: uuid.UUID,
    tenant: str,
    opening: Opening,
    keepalive_seconds: float,
) -> AsyncIterator[str]:
    """The SSE text of the connection: ``opening.first``, then each new event until `end`, with a
    keep-alive comment whenever nothing happened for ``keepalive_seconds``."""
    yield sse.retry(RECONNECT_MILLISECONDS)
    for event in opening.first:
        yield sse.encode(event)
    if opening.done:
        return
    key = stream_key(job_id)
    cursor = opening.cursor
    # Reads block for at most the client's socket timeout allows, so a keep-alive may take several.
    block_ms = max(1, int(await _block_seconds(redis, keepalive_seconds) * 1000))
    clock = asyncio.get_running_loop().time
    quiet_since = clock()
    while True:
        events = await _events_after(redis, key, cursor, block_ms)
        for event in events:
            cursor = event.id or cursor
            yield sse.encode(event)
            if event.name == "end":
                return
        if events:
            quiet_since = clock()
            continue
        if clock() - quiet_since < keepalive_seconds:
            continue
        quiet_since = clock()
        yield sse.comment("keep-alive")
        # A quiet while: make sure the job did not end unannounced (its end event lost, e.g. Redis
        # restarted between the commit and the announcement).
        try:
            view = await _view(db, job_id, tenant)
        except NotFound:
            return
        if view.ended:
            # Whatever reached the stream meanwhile first; the job's end if the stream lacks it.
            for event in await _events_after(redis, key, cursor, None):
                cursor = event.id or cursor
                yield sse.encode(event)
                if event.name == "end":
                    return
            for event in view.opening_events(cursor):
                yield sse.encode(event)
            return
