"""A job's state changes and what they announce: each change appears on the job's event stream once
its transaction commits (never when it rolls back), and an end exactly once."""

from __future__ import annotations

import uuid

import pytest
from redis import Redis

from app.core.db import Database
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue, job_channel
from tests.conftest import RollbackDatabase
from tests.jobs.streams import stream_events


@pytest.fixture
def queue(redis: Redis) -> JobQueue:
    return JobQueue(redis, 60)


def _job(db: Database) -> uuid.UUID:
    with db.unit_of_work() as session:
        return jobs_repo.create_job(
            session, kind="judge_single", model="m", queue="judge.m", params={}, total=4, tenant="t"
        ).id


def _events(redis: Redis, job_id: uuid.UUID) -> list[tuple[str, dict[str, object]]]:
    return [(e.name, e.data) for e in stream_events(redis, job_id)]


def test_claim_release_and_progress_are_announced_in_order(
    db: RollbackDatabase, redis: Redis, queue: JobQueue
) -> None:
    job_id = _job(db)
    with db.unit_of_work() as session:
        assert lifecycle.claim(session, queue, job_id, "w1", 60) is not None
    with db.unit_of_work() as session:
        lifecycle.record_progress(session, queue, job_id, 2, "judging")
    with db.unit_of_work() as session:
        lifecycle.record_progress(session, queue, job_id, 2, "judging")  # nothing moved
        lifecycle.record_progress(session, queue, job_id, 2, "scoring")  # only the stage
        lifecycle.record_progress(session, queue, job_id, 2, "scoring", total=5)  # only the total
    with db.unit_of_work() as session:
        lifecycle.release(session, queue, job_id, "engine fell over")
    assert _events(redis, job_id) == [
        ("status", {"status": "running", "attempts": 1}),
        ("progress", {"done": 2, "total": 4}),
        ("stage", {"stage": "judging"}),
        ("stage", {"stage": "scoring"}),
        ("progress", {"done": 2, "total": 5}),
        ("status", {"status": "queued", "error": "engine fell over"}),
    ]


def test_a_claim_that_fails_announces_nothing(db: RollbackDatabase, redis: Redis, queue: JobQueue) -> None:
    job_id = _job(db)
    with db.unit_of_work() as session:
        lifecycle.claim(session, queue, job_id, "w1", 60)
    with db.unit_of_work() as session:
        assert lifecycle.claim(session, queue, job_id, "w2", 60) is None  # held by w1
    assert [name for name, _ in _events(redis, job_id)] == ["status"]


def test_nothing_is_announced_when_the_transaction_rolls_back(
    db: RollbackDatabase, redis: Redis, queue: JobQueue
) -> None:
    job_id = _job(db)
    with pytest.raises(RuntimeError), db.unit_of_work() as session:
        lifecycle.claim(session, queue, job_id, "w1", 60)
        lifecycle.record_progress(session, queue, job_id, 1, "judging")
        lifecycle.end(session, queue, job_id, "succeeded", None)
        raise RuntimeError("rolled back")
    assert _events(redis, job_id) == []


def test_an_end_is_announced_once_on_the_stream_and_to_wait_listeners(
    db: RollbackDatabase, redis: Redis, queue: JobQueue
) -> None:
    job_id = _job(db)
    pubsub = redis.pubsub()
    pubsub.subscribe(job_channel(job_id))
    assert pubsub.get_message(timeout=1) is not None  # the subscription itself
    with db.unit_of_work() as session:
        assert lifecycle.end(session, queue, job_id, "failed", "bad input")
    with db.unit_of_work() as session:
        assert not lifecycle.end(session, queue, job_id, "succeeded", None)
    [(name, data)] = _events(redis, job_id)
    assert name == "end"
    assert (data["status"], data["error"], data["progress"]) == (
        "failed",
        "bad input",
        {"done": 0, "total": 4, "failed": 0},
    )
    assert data["finished_at"] is not None
    message = pubsub.get_message(timeout=1)
    assert message is not None and message["data"] == b"failed"
    assert pubsub.get_message(timeout=0.2) is None
    pubsub.close()


def test_cancel_ends_a_queued_job_at_once_but_a_running_one_at_its_workers_check(
    db: RollbackDatabase, redis: Redis, queue: JobQueue
) -> None:
    queued, running = _job(db), _job(db)
    with db.unit_of_work() as session:
        lifecycle.claim(session, queue, running, "w1", 60)
    for job_id in (queued, running):
        with db.unit_of_work() as session:
            job = jobs_repo.get_job(session, job_id)
            assert job is not None
            lifecycle.cancel(session, queue, job)
    assert [(n, d["status"]) for n, d in _events(redis, queued)] == [("end", "cancelled")]
    assert [n for n, _ in _events(redis, running)] == ["status"]
