"""Hearing of job ends for `?wait=` requests: one Redis pub/sub connection per API process.

Every waiting request subscribes its job's channel on the process's one shared connection (a
SUBSCRIBE on an open connection, not a new connection per request), and one reader task hands each
announcement to the requests waiting on that job. When the connection drops, redis-py reconnects and
subscribes the channels again; an announcement sent meanwhile is lost, which each waiter's periodic
read of its job covers (:func:`app.jobs.service.wait_until_ended`). A failure the reader sees wakes
every waiter at once, so each re-reads its job from the database (the truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import PubSub

from app.jobs.queue import job_channel

log = logging.getLogger(__name__)

# How long the reader blocks on the connection per call.
_READ_SECONDS = 1.0
# The pause before reading again after the connection failed (Redis restarting, say).
_RETRY_SECONDS = 0.5


class EndWatch:
    """One request's interest in one job's end. ``message`` holds the last announcement heard (the
    job's status, or the ended job as JSON: :meth:`JobQueue.announce_end`); None after a wake-up for
    a lost connection."""

    def __init__(self) -> None:
        self._woken = asyncio.Event()
        self.message: bytes | None = None

    def wake(self, message: bytes | None = None) -> None:
        self.message = message
        self._woken.set()

    async def wait(self, timeout: float) -> bool:
        """True once the job's end was announced (or announcements may have been lost: read the job
        either way); False when ``timeout`` seconds pass first."""
        try:
            await asyncio.wait_for(self._woken.wait(), max(0.0, timeout))
        except TimeoutError:
            return False
        self._woken.clear()
        return True


class JobEndListener:
    """The shared subscription of one API process (built with the app's state, started by the first
    waiter in the running event loop, stopped with the app)."""

    def __init__(self, redis: AsyncRedis) -> None:
        self.redis = redis
        self._watches: dict[str, set[EndWatch]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Unsubscriptions of cancelled watches, sent behind their requests' backs.
        self._leaving: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def watch(self, job_id: uuid.UUID) -> AsyncIterator[EndWatch]:
        """Listen for ``job_id``'s end while the block runs. The subscription is sent when this
        returns: an end announced after that reaches the watch."""
        pubsub = self._ensure_started()
        channel = job_channel(job_id)
        watch = EndWatch()
        watches = self._watches.setdefault(channel, set())
        watches.add(watch)
        cancelled = False
        try:
            if len(watches) == 1:
                await pubsub.subscribe(channel)
                self._subscribed.set()
            yield watch
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            watches.discard(watch)
            if not watches and self._watches.get(channel) is watches:
                del self._watches[channel]
                if cancelled:
                    # The request is being cut short (the server is stopping): it must not wait on
                    # Redis before it answers.
                    self._unsubscribe_later(pubsub, channel)
                else:
                    await self._unsubscribe(pubsub, channel)

    @staticmethod
    async def _unsubscribe(pubsub: PubSub, channel: str) -> None:
        with contextlib.suppress(Exception):  # a dropped connection forgets it anyway
            await pubsub.unsubscribe(channel)

    def _unsubscribe_later(self, pubsub: PubSub, channel: str) -> None:
        task = asyncio.create_task(self._unsubscribe(pubsub, channel), name="job-end-unsubscribe")
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def stop(self) -> None:
        """Stop the reader and close the connection (the app is shutting down)."""
        reader, pubsub = self._reader, self._pubsub
        self._reader, self._pubsub = None, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        self._wake_all()
        self._watches.clear()

    def _ensure_started(self) -> PubSub:
        loop = asyncio.get_running_loop()
        if self._pubsub is None or self._reader is None or self._reader.done() or self._loop is not loop:
            if self._loop is not loop:
                # A new event loop (e.g. a test client's next one) needs its own connection; the old
                # loop's watches are gone with it.
                self._watches.clear()
            self._loop = loop
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            self._subscribed = asyncio.Event()  # (of this event loop)
            self._reader = asyncio.create_task(self._read(self._pubsub), name="job-end-listener")
        return self._pubsub

    async def _read(self, pubsub: PubSub) -> None:
        lost = False
        while True:
            if not pubsub.subscribed:
                # Nothing to hear until the next SUBSCRIBE (the connection opens with the first).
                self._subscribed.clear()
                await self._subscribed.wait()
                continue
            try:
                message = await pubsub.get_message(timeout=_READ_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("job-end subscription lost (%s); waiters re-read their jobs", exc)
                lost = True
                self._wake_all()
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if lost:
                log.info("job-end subscription restored")
                lost = False
            if message is not None and message["type"] == "message":
                channel = message["channel"]
                name = channel.decode() if isinstance(channel, bytes) else str(channel)
                data = message["data"]
                for watch in self._watches.get(name, ()):
                    watch.wake(data if isinstance(data, bytes) else str(data).encode())

    def _wake_all(self) -> None:
        for watches in self._watches.values():
            for watch in watches:
                watch.wake()
