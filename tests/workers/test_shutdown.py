"""Graceful shutdown: a stopping worker finishes its current batch and hands the rest back."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Queue

from app.engine.base import Conversation
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.queue import queue_name
from tests.conftest import RollbackDatabase
from tests.workers.conftest import ScriptedEngine, first_position_judge
from workers import context
from workers.tasks import run_job

Submit = Callable[[str, dict[str, Any]], uuid.UUID]
Install = Callable[[Callable[[Conversation], str]], ScriptedEngine]


def _items(n: int) -> list[dict[str, Any]]:
    return [{"question": f"Q{i}?", "answer_a": "a", "answer_b": "b"} for i in range(n)]


def test_sigterm_mid_job_hands_the_rest_back_without_spending_an_attempt(
    db: RollbackDatabase, redis: Redis, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(first_position_judge)
    job_id = submit("pairwise", {"items": _items(6), "swap": "conservative"})
    ctx = context.current()

    def stop_after_first_batch(conv: Conversation) -> str:
        # SIGTERM arrives while the first batch is on the engine.
        ctx.shutdown.set()
        return first_position_judge(conv)

    engine.reply = stop_after_first_batch
    queue = Queue(queue_name(ctx.model), connection=redis)
    queue.empty()
    run_job(str(job_id))
    assert len(engine.batches) == 1  # the running batch finished, no new one started
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None
        assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
        results = jobs_service.all_results(session, job)
        assert sum(r.status == "ok" for r in results) == 2  # 4 calls = 2 items, kept
    # Handed back at once to the model's queue (not left for the sweeper).
    assert len(queue.job_ids) == 1 and "handback" in queue.job_ids[0]

    # The next worker finishes the rest: the first two items are not judged again.
    ctx.shutdown.clear()
    engine.reply = first_position_judge
    run_job(str(job_id))
    assert [len(b) for b in engine.batches] == [4, 4, 4]
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None and job.status == "succeeded" and job.attempts == 1
        results = jobs_service.all_results(session, job)
        assert [r.status for r in results] == ["ok"] * 6
        assert all(len(r.orders) == 2 for r in results)


def test_a_finished_job_still_ends_when_shutdown_comes_after_its_last_batch(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(first_position_judge)
    job_id = submit("pairwise", {"items": _items(2), "swap": "conservative"})
    ctx = context.current()

    def stop(conv: Conversation) -> str:
        ctx.shutdown.set()
        return first_position_judge(conv)

    engine.reply = stop
    run_job(str(job_id))
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None and job.status == "succeeded"
