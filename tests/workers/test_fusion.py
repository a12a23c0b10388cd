"""Cross-request batching: one worker fuses the items of compatible queued jobs into shared batches."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job as RQJob

from app.engine.base import Conversation
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.queue import delivery_id, queue_name
from tests.conftest import RollbackDatabase
from tests.workers.conftest import ScriptedEngine, first_position_judge
from workers import judging
from workers.tasks import run_job

Submit = Callable[[str, dict[str, Any]], uuid.UUID]
Install = Callable[[Callable[[Conversation], str]], ScriptedEngine]


def _pair(i: int) -> dict[str, Any]:
    return {"question": f"Q{i}?", "answer_a": f"a{i}", "answer_b": f"b{i}"}


def _job(db: RollbackDatabase, job_id: uuid.UUID) -> Any:
    with db.unit_of_work() as session:
        job = jobs_service.get_job(session, job_id, "default")
        return job.status, job.progress_done, job.progress_total, jobs_service.all_results(session, job)


def test_many_small_jobs_share_engine_batches(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(first_position_judge)  # batch_size 4 in these tests
    jobs = [submit("pairwise", {"items": [_pair(i)], "swap": "none"}) for i in range(8)]
    # One delivery runs them all; the other deliveries find their job already done.
    assert run_job(str(jobs[0])) == "done"
    assert [len(b) for b in engine.batches] == [4, 4]
    for job_id in jobs:
        status, done, total, [result] = _job(db, job_id)
        assert (status, done, total) == ("succeeded", 1, 1)
        assert result.verdict == "A"
    assert run_job(str(jobs[5])).startswith("skipped")
    assert [len(b) for b in engine.batches] == [4, 4]


def test_both_orders_of_an_item_stay_in_one_batch(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(first_position_judge)
    a = submit("pairwise", {"items": [_pair(0)], "swap": "conservative"})
    b = submit("pairwise", {"items": [_pair(1), _pair(2)], "swap": "none"})
    c = submit("pairwise", {"items": [_pair(3)], "swap": "conservative"})
    run_job(str(a))
    # a: AB+BA, b: 2 calls -> 4; then c: AB+BA.
    assert [len(batch) for batch in engine.batches] == [4, 2]
    assert all(_job(db, j)[0] == "succeeded" for j in (a, b, c))


def test_jobs_that_decode_differently_run_together_but_never_share_an_engine_batch(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(first_position_judge)
    greedy = submit("pairwise", {"items": [_pair(0)], "swap": "none"})
    longer = submit("pairwise", {"items": [_pair(1)], "swap": "none", "max_tokens": 99})
    sampled = submit("pairwise", {"items": [_pair(2)], "swap": "none", "temperature": 0.7, "seed": 1})
    greedy_too = submit("pairwise", {"items": [_pair(3)], "swap": "none", "seed": 5})
    run_job(str(greedy))
    # One worker loop takes every judging job; the scheduler batches only calls that decode alike
    # (greedy jobs share batches whatever their recorded seed).
    assert all(_job(db, j)[0] == "succeeded" for j in (greedy, longer, sampled, greedy_too))
    assert sorted(len(b) for b in engine.batches) == [1, 1, 2]
    assert len({(s.temperature, s.max_tokens, s.seed) for s in engine.samplings}) == 3


def test_single_and_pairwise_jobs_fuse_and_keep_their_own_results(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    def reply(conv: Conversation) -> str:
        return "7]]" if conv[-1]["content"].startswith("Rating") else "B]]"

    engine = make_worker(reply)
    single = submit("single", {"items": [{"question": "q", "answer": "x"}]})
    pair = submit("pairwise", {"items": [_pair(0)], "swap": "conservative"})
    run_job(str(single))
    assert [len(b) for b in engine.batches] == [3]
    assert _job(db, single)[3][0].score == 7
    [pair_result] = _job(db, pair)[3]
    assert (pair_result.verdict, pair_result.consistent) == ("tie", False)


def test_a_cancelled_job_is_dropped_between_batches(
    db: RollbackDatabase, make_worker: Install, submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = submit("pairwise", {"items": [_pair(i) for i in range(4)], "swap": "none"})
    second = submit("pairwise", {"items": [_pair(i) for i in range(8)], "swap": "none"})

    def cancel_second_after_first_batch(conv: Conversation) -> str:
        if len(engine.batches) == 1:
            with db.unit_of_work() as session:
                job = jobs_repo.get_job(session, second)
                assert job is not None
                jobs_repo.request_cancel(session, job)
        return "A]]"

    engine = make_worker(cancel_second_after_first_batch)
    monkeypatch.setattr(judging, "CHECK_SECONDS", 0.0)  # look for cancels after every batch
    run_job(str(first))
    assert _job(db, first)[0] == "succeeded"
    status, done, total, _ = _job(db, second)
    assert status == "cancelled"
    assert done < total


def test_a_fused_job_ends_when_its_own_items_are_done(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    """Under steady load the fused batch never runs dry; a small job must not wait for a big one."""
    small = submit("pairwise", {"items": [_pair(0)], "swap": "none"})
    big = submit("pairwise", {"items": [_pair(i) for i in range(1, 12)], "swap": "none"})
    seen: list[tuple[str, str]] = []

    def judge(conv: Conversation) -> str:
        seen.append((_job(db, small)[0], _job(db, big)[0]))
        return first_position_judge(conv)

    engine = make_worker(judge)
    run_job(str(small))
    assert [len(b) for b in engine.batches] == [4, 4, 4]
    # From the second batch on, the small job has already ended while the big one still runs.
    assert seen[4:] == [("succeeded", "running")] * 8
    assert _job(db, big)[0] == "succeeded"


def test_the_deliveries_of_fused_jobs_leave_the_queue(
    db: RollbackDatabase, redis: Redis, make_worker: Install, submit: Submit, registered_model: str
) -> None:
    make_worker(first_position_judge)
    jobs = [submit("pairwise", {"items": [_pair(i)], "swap": "none"}) for i in range(3)]
    queue = Queue(queue_name(registered_model), connection=redis)
    assert sorted(queue.job_ids) == sorted(delivery_id(j, 0) for j in jobs)
    assert run_job(str(jobs[0])) == "done"  # (as if RQ had delivered jobs[0]; it fuses the other two)
    # No worker will dequeue the fused jobs' deliveries only to find them taken.
    assert queue.job_ids == [delivery_id(jobs[0], 0)]
    assert not any(redis.exists(RQJob.key_for(delivery_id(j, 0))) for j in jobs[1:])
    assert all(_job(db, j)[0] == "succeeded" for j in jobs)
