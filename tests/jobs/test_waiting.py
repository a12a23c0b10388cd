"""Waiting for a job's end (`?wait=`): the waiter reads the job once after subscribing, then once when the
end is announced, and never in between for nothing."""

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


def _wait(
    db: RollbackDatabase,
    redis: Redis,
    job_id: uuid.UUID,
    timeout: float,
    meanwhile: Callable[[], None] | None = None,
) -> tuple[JobOut | None, int]:
    """Wait for the job as `?wait=` does; ``meanwhile`` runs once the waiter listens and has looked at the
    job. Returns what the wait gave and how many times the waiter read the job."""
    reads = 0

    def read_if_ended(session: Session) -> JobOut | None:
        nonlocal reads
        job = jobs_service.get_job(session, job_id, "t")
        reads += 1
        return jobs_service.job_out(job, []) if job.status in jobs_service.TERMINAL else None

    async def scenario() -> JobOut | None:
        async with AsyncRedis.from_url(TEST_REDIS_URL) as async_redis:
            waiting = asyncio.create_task(
                jobs_service.wait_until_ended(db, async_redis, job_id, timeout, read_if_ended)
            )
            if meanwhile is not None:
                while reads < 1 or not redis.pubsub_numsub(job_channel(job_id))[0][1]:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)  # (the waiter is past its first look: nothing else happens)
                await asyncio.to_thread(meanwhile)
            return await asyncio.wait_for(waiting, timeout + 5)

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
