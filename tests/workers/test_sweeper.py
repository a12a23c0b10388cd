"""Delivery repair: dead workers' jobs go back to the queue, lost deliveries are re-sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from redis import Redis
from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from sqlalchemy import update

from app.db.base import utcnow
from app.db.tables import Job
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue, delivery_id, queue_name
from app.models.availability import report_load_failure
from tests.conftest import RollbackDatabase
from workers.sweeper import fail_overdue, fail_unloadable, sweep

Submit = Callable[[str, dict[str, Any]], uuid.UUID]
ITEM = {"question": "q", "answer_a": "a", "answer_b": "b"}
QUEUE = queue_name("SmolLM2-135M-Instruct")


def _age(db: RollbackDatabase, job_id: uuid.UUID, **values: Any) -> None:
    with db.unit_of_work() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _job(db: RollbackDatabase, job_id: uuid.UUID) -> Job:
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None
        return job


def test_expired_lease_sends_the_job_back_to_the_queue(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    job_id = submit("pairwise", {"items": [ITEM]})
    with db.unit_of_work() as session:
        assert jobs_repo.claim(session, job_id, "dead-worker", lease_seconds=60) is not None
    _age(db, job_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    queue = JobQueue(redis, 60)
    assert sweep(db, queue, QUEUE, lease_seconds=60, max_attempts=3) == 1
    job = _job(db, job_id)
    assert (job.status, job.lease_owner, job.attempts) == ("queued", None, 1)
    assert delivery_id(job_id, 1) in Queue(QUEUE, connection=redis).job_ids


def test_expired_lease_after_the_last_attempt_fails_the_job(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    job_id = submit("pairwise", {"items": [ITEM]})
    with db.unit_of_work() as session:
        jobs_repo.claim(session, job_id, "dead-worker", lease_seconds=60)
    _age(db, job_id, lease_expires_at=utcnow() - timedelta(seconds=1), attempts=3)
    sweep(db, JobQueue(redis, 60), QUEUE, lease_seconds=60, max_attempts=3)
    job = _job(db, job_id)
    assert job.status == "failed"
    assert job.error is not None and "lease expired" in job.error


def test_live_lease_is_left_alone(db: RollbackDatabase, redis: Redis, submit: Submit) -> None:
    job_id = submit("pairwise", {"items": [ITEM]})
    with db.unit_of_work() as session:
        jobs_repo.claim(session, job_id, "busy-worker", lease_seconds=60)
    assert sweep(db, JobQueue(redis, 60), QUEUE, lease_seconds=60, max_attempts=3) == 0
    assert _job(db, job_id).lease_owner == "busy-worker"


def test_queued_job_lost_by_redis_is_redelivered_once(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    job_id = submit("pairwise", {"items": [ITEM]})
    redis.flushdb()  # Redis lost its data after the commit
    _age(db, job_id, updated_at=utcnow() - timedelta(minutes=5))
    queue = JobQueue(redis, 60)
    assert sweep(db, queue, QUEUE, lease_seconds=60, max_attempts=3) == 1
    assert Queue(QUEUE, connection=redis).job_ids == [delivery_id(job_id, 0)]
    # Still held by the queue: a second pass sends nothing more.
    assert sweep(db, queue, QUEUE, lease_seconds=60, max_attempts=3) == 0
    assert len(Queue(QUEUE, connection=redis).job_ids) == 1


def test_other_models_jobs_are_not_touched(db: RollbackDatabase, redis: Redis, submit: Submit) -> None:
    job_id = submit("pairwise", {"items": [ITEM]})
    redis.flushdb()
    _age(db, job_id, updated_at=utcnow() - timedelta(minutes=5))
    assert sweep(db, JobQueue(redis, 60), "judge.other-model", lease_seconds=60, max_attempts=3) == 0


def test_reconcile_pass_covers_every_queue(db: RollbackDatabase, redis: Redis, submit: Submit) -> None:
    """`judge reconcile` (queue None) re-delivers lost jobs of any model onto each job's own queue,
    and re-queues an expired lease whatever its queue."""
    lost = submit("pairwise", {"items": [ITEM]})
    dead = submit("pairwise", {"items": [ITEM]})
    with db.unit_of_work() as session:
        jobs_repo.claim(session, dead, "dead-worker", lease_seconds=60)
    redis.flushdb()
    _age(db, lost, updated_at=utcnow() - timedelta(minutes=5), queue="judge.other-model")
    _age(db, dead, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert sweep(db, JobQueue(redis, 60), None, lease_seconds=60, max_attempts=3) == 2
    assert Queue("judge.other-model", connection=redis).job_ids == [delivery_id(lost, 0)]
    assert Queue(QUEUE, connection=redis).job_ids == [delivery_id(dead, 1)]


# Jobs no worker takes ------------------------------------------------------------------------------


def test_a_job_queued_past_the_timeout_fails_whatever_its_queue(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    overdue, recent, running = (submit("pairwise", {"items": [ITEM]}) for _ in range(3))
    with db.unit_of_work() as session:
        jobs_repo.claim(session, running, "busy-worker", lease_seconds=600)
    for job_id in (overdue, running):
        _age(db, job_id, updated_at=utcnow() - timedelta(hours=2))
    assert fail_overdue(db, JobQueue(redis, 60), timeout_seconds=3600) == 1
    failed = _job(db, overdue)
    assert failed.status == "failed"
    assert failed.error == f"no worker took the job within 3600 s (queue {QUEUE})"
    assert (_job(db, recent).status, _job(db, running).status) == ("queued", "running")


def test_an_overdue_job_of_a_model_its_workers_cannot_load_says_why(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    job_id = submit("pairwise", {"items": [ITEM]})
    report_load_failure(redis, QUEUE, "SmolLM2-135M-Instruct", "its folder /models/x is missing", "w1")
    _age(db, job_id, updated_at=utcnow() - timedelta(seconds=120))
    assert fail_overdue(db, JobQueue(redis, 60), timeout_seconds=60) == 1
    error = _job(db, job_id).error
    assert error is not None and error.endswith(
        "model 'SmolLM2-135M-Instruct' cannot be loaded by its workers: its folder /models/x is missing"
    )


# Jobs of a model its workers cannot load ------------------------------------------------------------


def _queued_for(db: RollbackDatabase, model: str) -> uuid.UUID:
    """A queued job for ``model`` on the default model's queue (a model trained from it)."""
    with db.unit_of_work() as session:
        return jobs_repo.create_job(
            session, kind="judge_pairwise", model=model, queue=QUEUE, params={}, total=1, tenant="default"
        ).id


def test_jobs_of_a_model_its_workers_cannot_load_fail_once_the_grace_has_passed(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    job_id = submit("pairwise", {"items": [ITEM]})
    other = submit("pairwise", {"items": [ITEM]})
    _age(db, other, queue="judge.other-model")
    report_load_failure(redis, QUEUE, "SmolLM2-135M-Instruct", "OSError: weights truncated", "w1")
    queue = JobQueue(redis, 60)
    assert fail_unloadable(db, queue, grace_seconds=300) == 0  # time to fix it and restart the worker
    assert _job(db, job_id).status == "queued"
    # A worker restarted in a loop reports again: the failure still dates from its first report.
    report_load_failure(redis, QUEUE, "SmolLM2-135M-Instruct", "OSError: weights truncated", "w2")
    assert fail_unloadable(db, queue, grace_seconds=0) == 1
    failed = _job(db, job_id)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.startswith(
        "model 'SmolLM2-135M-Instruct' cannot be loaded by its workers: OSError: weights truncated (since "
    )
    assert _job(db, other).status == "queued"


def test_a_descendant_that_cannot_load_fails_only_its_own_jobs(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    root_job = submit("pairwise", {"items": [ITEM]})
    child_job = _queued_for(db, "sr-child-1")
    report_load_failure(redis, QUEUE, "sr-child-1", "ModelUnavailable: its folder is missing", "w1")
    assert fail_unloadable(db, JobQueue(redis, 60), grace_seconds=0) == 1
    assert (_job(db, child_job).status, _job(db, root_job).status) == ("failed", "queued")


def test_a_delivery_popped_and_never_started_is_redelivered(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    """RQ still calls the delivery queued, but no list holds it: a client popped it and never started
    it (a worker killed in between, or a pop the embedded Redis kept for a client that had gone)."""
    job_id = submit("pairwise", {"items": [ITEM]})
    rq_queue = Queue(QUEUE, connection=redis)
    assert redis.lpop(rq_queue.key) == delivery_id(job_id, 0).encode()
    _age(db, job_id, updated_at=utcnow() - timedelta(minutes=5))
    queue = JobQueue(redis, 60)
    assert sweep(db, queue, QUEUE, lease_seconds=60, max_attempts=3) == 1
    assert rq_queue.job_ids == [delivery_id(job_id, 0)]
    assert sweep(db, queue, QUEUE, lease_seconds=60, max_attempts=3) == 0


def test_a_delivery_a_worker_is_about_to_start_is_left_alone(
    db: RollbackDatabase, redis: Redis, submit: Submit
) -> None:
    """Popped into RQ's intermediate list (RQ moves a delivery there as a worker takes it): held."""
    job_id = submit("pairwise", {"items": [ITEM]})
    rq_queue = Queue(QUEUE, connection=redis)
    assert redis.lmove(rq_queue.key, IntermediateQueue.get_intermediate_queue_key(rq_queue.key)) is not None
    _age(db, job_id, updated_at=utcnow() - timedelta(minutes=5))
    assert sweep(db, JobQueue(redis, 60), QUEUE, lease_seconds=60, max_attempts=3) == 0
    assert rq_queue.job_ids == []
