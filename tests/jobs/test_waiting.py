"""Waiting for a job's end (`?wait=`): one shared subscription per API process; the waiter reads the
job once after subscribing (unless it subscribed before the job existed), then once when the end is
announced, or not at all when the announcement carries the ended job."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy.orm import Session

from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.end_listener import JobEndListener
from app.jobs.queue import JobQueue, job_channel
from app.jobs.schemas import JobOut
from tests.conftest import TEST_REDIS_URL, RollbackDatabase


@pytest.fixture
def queue(redis: Redis) -> JobQueue:
    return JobQueue(redis, 60)


def _running_job(db: RollbackDatabase, queue: JobQueue) -> uuid.UUID:
    with db.unit_of_work() as session:
        job = jobs_repo.create_job(
            session, kind="judge_pairwise", model="m", queue="judge.m", params={}, total=0, tenant="t"
        )
        job_id = job.id
    with db.unit_of_work() as session:
        assert lifecycle.claim(session, queue, job_id, "w1", 60)
    return job_id


def _subscribers(redis: Redis, job_id: uuid.UUID) -> int:
    return int(redis.pubsub_numsub(job_channel(job_id))[0][1])


def _wait(
    db: RollbackDatabase,
    redis: Redis,
    job_id: uuid.UUID,
    timeout: float,
    meanwhile: Callable[[], None] | None = None,
    look_first: bool = True,
) -> tuple[JobOut | None, int]:
    """Wait for the job as `?wait=` does; ``meanwhile`` runs once the waiter listens and has looked at the
    job. Returns what the wait gave and how many times the waiter read the job."""
    reads = 0

    def read_if_ended(session: Session) -> JobOut | None:
        nonlocal reads
        job = jobs_service.get_job(session, job_id, "t")
        reads += 1
        return jobs_service.job_out(job, []) if job.status in jobs_service.TERMINAL else None

    def from_announcement(message: bytes) -> JobOut | None:
        return JobOut.model_validate_json(message) if message.startswith(b"{") else None

    async def scenario() -> JobOut | None:
        async with AsyncRedis.from_url(TEST_REDIS_URL) as async_redis:
            listener = JobEndListener(async_redis)

            async def wait() -> JobOut | None:
                async with listener.watch(job_id) as watch:
                    return await jobs_service.wait_until_ended(
                        db,
                        watch,
                        timeout,
                        read_if_ended,
                        look_first=look_first,
                        from_announcement=from_announcement,
                    )

            waiting = asyncio.create_task(wait())
            try:
                if meanwhile is not None:
                    while reads < int(look_first) or not _subscribers(redis, job_id):
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.1)  # (the waiter is past its first look: nothing else happens)
                    await asyncio.to_thread(meanwhile)
                return await asyncio.wait_for(waiting, timeout + 5)
            finally:
                await listener.stop()

    return asyncio.run(scenario()), reads


def test_the_end_announcement_answers_a_waiter_with_one_read(
    db: RollbackDatabase, redis: Redis, queue: JobQueue
) -> None:
    job_id = _running_job(db, queue)

    def end() -> None:
        with db.unit_of_work() as session:
            assert lifecycle.end(session, queue, job_id, "failed", "engine lost")

    started = time.monotonic()
    answer, reads = _wait(db, redis, job_id, 10.0, end)
    assert time.monotonic() - started < 5
    assert reads == 2  # on subscribing (still running), then once after the announcement
    assert answer is not None and (answer.status, answer.error) == ("failed", "engine lost")
    assert _subscribers(redis, job_id) == 0  # the channel is left once nobody waits on it


def test_an_announcement_carrying_the_ended_job_answers_without_a_read(
    db: RollbackDatabase, redis: Redis, queue: JobQueue
) -> None:
    job_id = _running_job(db, queue)

    def end() -> None:
        with db.unit_of_work() as session:
            assert lifecycle.end(
                session,
                queue,
                job_id,
                "succeeded",
                None,
                lambda job: jobs_service.job_out(job, []).model_dump_json(),
            )

    answer, reads = _wait(db, redis, job_id, 10.0, end, look_first=False)
    assert reads == 0
    assert answer is not None and (answer.id, answer.status, answer.results) == (job_id, "succeeded", [])


def test_a_job_that_already_ended_answers_at_once(
    db: RollbackDatabase, redis: Redis, queue: JobQueue
) -> None:
    job_id = _running_job(db, queue)
    with db.unit_of_work() as session:
        assert lifecycle.end(session, queue, job_id, "succeeded", None)
    answer, reads = _wait(db, redis, job_id, 10.0)
    assert reads == 1
    assert answer is not None and answer.status == "succeeded"


def test_a_wait_that_runs_out_looks_once_more_at_its_end(
    db: RollbackDatabase, redis: Redis, queue: JobQueue
) -> None:
    job_id = _running_job(db, queue)
    started = time.monotonic()
    answer, reads = _wait(db, redis, job_id, 0.3)
    assert answer is None
    assert 0.3 <= time.monotonic() - started < 3
    assert reads == 2


def test_waiters_share_one_connection_and_each_hears_its_own_job(redis: Redis) -> None:
    jobs = [uuid.uuid4() for _ in range(3)]

    async def scenario() -> list[bytes | None]:
        async with AsyncRedis.from_url(TEST_REDIS_URL) as async_redis:
            listener = JobEndListener(async_redis)
            try:
                async with (
                    listener.watch(jobs[0]) as w0,
                    listener.watch(jobs[0]) as w0b,
                    listener.watch(jobs[1]) as w1,
                ):
                    clients = [c for c in redis.client_list() if c.get("sub") != "0"]
                    assert len(clients) == 1  # three watches, one subscribed connection
                    await asyncio.to_thread(redis.publish, job_channel(jobs[0]), "succeeded")
                    assert await w0.wait(5) and await w0b.wait(5)
                    assert not await w1.wait(0.2)  # another job's end does not wake it
                    return [w0.message, w0b.message, w1.message]
            finally:
                await listener.stop()

    assert asyncio.run(scenario()) == [b"succeeded", b"succeeded", None]
    assert all(_subscribers(redis, job_id) == 0 for job_id in jobs)


def test_the_shared_subscription_survives_a_dropped_connection(redis: Redis) -> None:
    job_id = uuid.uuid4()

    async def scenario() -> bytes | None:
        async with AsyncRedis.from_url(TEST_REDIS_URL) as async_redis:
            listener = JobEndListener(async_redis)
            try:
                async with listener.watch(job_id) as watch:
                    while not _subscribers(redis, job_id):
                        await asyncio.sleep(0.01)
                    killed = await asyncio.to_thread(redis.client_kill_filter, _type="pubsub")
                    assert killed >= 1  # (the listener's connection among them)
                    deadline = time.monotonic() + 10
                    while not _subscribers(redis, job_id) and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)  # (redis-py reconnects and subscribes again)
                    await asyncio.to_thread(redis.publish, job_channel(job_id), "succeeded")
                    while await watch.wait(5):
                        if watch.message is not None:
                            return watch.message
                    return None
            finally:
                await listener.stop()

    assert asyncio.run(scenario()) == b"succeeded"
