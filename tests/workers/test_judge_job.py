"""The judging job runner end to end against the real database, with a scripted engine."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis

from app.engine.base import Conversation
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.queue import job_channel
from app.judging.templates import REFERENCE_SYSTEM_PROMPT
from app.models import repository as models_repo
from tests.conftest import RollbackDatabase
from tests.workers.conftest import ScriptedEngine, first_position_judge, longer_answer_judge, user_text
from workers import context
from workers.tasks import run_job

Submit = Callable[[str, dict[str, Any]], uuid.UUID]
Install = Callable[[Callable[[Conversation], str]], ScriptedEngine]


def _pair(i: int) -> dict[str, Any]:
    return {
        "id": f"item-{i}",
        "question": f"Question {i}?",
        "answer_a": "short",
        "answer_b": "a much longer answer",
    }


def _results(db: RollbackDatabase, job_id: uuid.UUID) -> tuple[str, list[dict[str, Any]]]:
    with db.unit_of_work() as session:
        job = jobs_service.get_job(session, job_id, "default")
        return job.status, [r.model_dump() for r in jobs_service.all_results(session, job)]


def test_conservative_swap_exposes_position_bias(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(first_position_judge)
    job_id = submit("pairwise", {"items": [_pair(i) for i in range(6)], "swap": "conservative"})
    assert run_job(str(job_id)) == "done"
    status, results = _results(db, job_id)
    assert status == "succeeded"
    assert len(results) == 6
    for r in results:
        assert r["status"] == "ok"
        assert r["verdict"] == "tie"
        assert r["consistent"] is False
        assert [o["order"] for o in r["orders"]] == ["AB", "BA"]
        # The judge said "A" both times; in BA order that means answer_b.
        assert [o["verdict"] for o in r["orders"]] == ["A", "B"]
        # The raw output kept is the template's reply prefix plus what the model wrote.
        assert all(o["raw"] == "Verdict: [[A]]" for o in r["orders"])
    # 6 items x 2 orders in batches of 4 calls (an item's orders always share a batch).
    assert [len(b) for b in engine.batches] == [4, 4, 4]


def test_conservative_swap_agrees_for_a_content_judge(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    make_worker(longer_answer_judge)
    job_id = submit("pairwise", {"items": [_pair(0)], "swap": "conservative"})
    run_job(str(job_id))
    _, [r] = _results(db, job_id)
    assert (r["verdict"], r["consistent"], r["id"]) == ("B", True, "item-0")


def test_unparseable_output_is_an_error_with_raw_kept(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    make_worker(lambda conv: "I cannot decide.")
    job_id = submit("pairwise", {"items": [_pair(0)], "swap": "none"})
    assert run_job(str(job_id)) == "done"
    _, [r] = _results(db, job_id)
    assert r["status"] == "error"
    assert r["verdict"] is None
    assert r["error"]
    assert r["orders"][0]["raw"] == "Verdict: [[I cannot decide."


def test_single_with_auto_reference(db: RollbackDatabase, make_worker: Install, submit: Submit) -> None:
    def reply(conv: Conversation) -> str:
        if conv[0]["content"] == REFERENCE_SYSTEM_PROMPT:
            return "  The reference answer is 42.  "
        assert "The reference answer is 42." in user_text(conv)
        assert conv[-1] == {"role": "assistant", "content": "Rating: [["}
        return "7]]"

    engine = make_worker(reply)
    job_id = submit(
        "single", {"items": [{"question": "What is 6*7?", "answer": "42"}], "reference": {"auto": True}}
    )
    run_job(str(job_id))
    _, [r] = _results(db, job_id)
    assert r["status"] == "ok"
    assert r["score"] == 7
    assert r["generated_references"] == ["The reference answer is 42."]
    assert [o["order"] for o in r["orders"]] == ["single"]
    assert len(engine.batches) == 2  # references first, then judging


def test_multi_turn_auto_reference_generates_each_turn_in_context(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    def reply(conv: Conversation) -> str:
        if conv[0]["content"] == REFERENCE_SYSTEM_PROMPT:
            return f"ref for turn {(len(conv) - 1) // 2 + 1}"
        return "A]]"

    make_worker(reply)
    item = {"turns": ["t1", "t2"], "answers_a": ["a1", "a2"], "answers_b": ["b1", "b2"]}
    job_id = submit("pairwise", {"items": [item], "reference": {"auto": True}, "swap": "none"})
    run_job(str(job_id))
    _, [r] = _results(db, job_id)
    assert r["generated_references"] == ["ref for turn 1", "ref for turn 2"]
    assert r["verdict"] == "A"


def test_out_of_scale_score_is_an_error(db: RollbackDatabase, make_worker: Install, submit: Submit) -> None:
    make_worker(lambda conv: "11]]")
    job_id = submit("single", {"items": [{"question": "q", "answer": "a"}]})
    run_job(str(job_id))
    _, [r] = _results(db, job_id)
    assert r["status"] == "error"
    assert "outside the scale" in r["error"]


def test_cancelled_before_start(
    db: RollbackDatabase, make_worker: Install, submit: Submit, redis: Any
) -> None:
    engine = make_worker(first_position_judge)
    job_id = submit("pairwise", {"items": [_pair(0)]})
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None
        jobs_repo.request_cancel(session, job)
    assert run_job(str(job_id)).startswith("skipped")
    assert engine.batches == []
    assert _results(db, job_id)[0] == "cancelled"


def test_a_batch_that_fails_once_is_rerun_request_by_request(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(first_position_judge)
    engine.fail_on_batch = 1
    job_id = submit("pairwise", {"items": [_pair(i) for i in range(8)], "swap": "conservative"})
    assert run_job(str(job_id)) == "done"
    # Batch 2 fell over: its four calls ran again one by one, and nothing else was affected.
    assert [len(b) for b in engine.batches] == [4, 1, 1, 1, 1, 4, 4]
    status, results = _results(db, job_id)
    assert status == "succeeded"
    assert all(len(r["orders"]) == 2 and r["status"] == "ok" for r in results)


def test_failed_attempt_resumes_without_redoing_committed_items(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    broken = {"on": True}

    def judge(conv: Conversation) -> str:
        if broken["on"] and "Question 5?" in user_text(conv):
            raise RuntimeError("engine fell over")
        return "A]]"

    engine = make_worker(judge)
    job_id = submit("pairwise", {"items": [_pair(i) for i in range(8)], "swap": "conservative"})
    run_job(str(job_id))
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None
        assert (job.status, job.attempts) == ("queued", 1)
        done = job.progress_done
    assert 4 <= done < 8  # what came back before the failure was kept
    first = sum(len(b) for b in engine.batches)
    broken["on"] = False
    assert run_job(str(job_id)) == "done"
    # The retry judges only the items the first attempt did not store.
    assert sum(len(b) for b in engine.batches) - first == 2 * (8 - done)
    status, results = _results(db, job_id)
    assert status == "succeeded"
    assert all(len(r["orders"]) == 2 and r["status"] == "ok" for r in results)


def test_failure_after_max_attempts_fails_the_job(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    def broken(conv: Conversation) -> str:
        raise RuntimeError("CUDA error: device-side assert")

    make_worker(broken)
    job_id = submit("pairwise", {"items": [_pair(0)]})
    run_job(str(job_id))
    assert _results(db, job_id)[0] == "queued"  # released for a retry
    run_job(str(job_id))
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None
        assert job.status == "failed"
        assert job.error is not None and "device-side assert" in job.error


def test_random_swap_is_reproducible_from_the_seed(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    make_worker(first_position_judge)
    body = {"items": [_pair(i) for i in range(12)], "swap": "random", "seed": 1234}
    first = submit("pairwise", body)
    second = submit("pairwise", body)
    run_job(str(first))
    run_job(str(second))
    orders_1 = [r["orders"][0]["order"] for r in _results(db, first)[1]]
    orders_2 = [r["orders"][0]["order"] for r in _results(db, second)[1]]
    assert orders_1 == orders_2
    assert set(orders_1) == {"AB", "BA"}
    # A first-position judge picks whichever answer was shown first.
    for r in _results(db, first)[1]:
        assert r["verdict"] == ("A" if r["orders"][0]["order"] == "AB" else "B")
        assert r["consistent"] is None


def test_verdict_only_templates_stop_at_the_closing_marker(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(lambda conv: "B]] and then a long explanation nobody asked for")
    job_id = submit("pairwise", {"items": [_pair(0)], "swap": "none"})
    run_job(str(job_id))
    assert engine.samplings[0].stop == ("]]",)
    _, [r] = _results(db, job_id)
    assert r["orders"][0]["raw"] == "Verdict: [[B]]"
    assert r["verdict"] == "B"


def test_cot_templates_generate_freely(db: RollbackDatabase, make_worker: Install, submit: Submit) -> None:
    engine = make_worker(lambda conv: "A is right because ... [[B]]? No: [[A]]")
    job_id = submit("pairwise", {"items": [_pair(0)], "swap": "none", "cot": True})
    run_job(str(job_id))
    assert engine.samplings[0].stop == ()
    _, [r] = _results(db, job_id)
    assert r["orders"][0]["raw"] == "A is right because ... [[B]]? No: [[A]]"
    assert r["verdict"] == "A"  # the last marker wins


def test_a_model_trained_from_the_workers_model_is_served_by_swapping_weights(
    db: RollbackDatabase, make_worker: Install, submit: Submit, registered_model: str
) -> None:
    engine = make_worker(first_position_judge)
    with db.unit_of_work() as session:
        parent = models_repo.get_by_name(session, registered_model)
        assert parent is not None
        child = models_repo.register_trained(
            session,
            name="judge-sr-1",
            backend="transformers",
            artifact_path="/models/judge-sr-1",
            parent_id=parent.id,
            job_id=None,  # type: ignore[arg-type]
            iteration=1,
            metrics={},
            owner=None,
        )
        child_id = str(child.id)
    engines = context.current().engines
    engines.family_of = lambda name: registered_model if name in ("judge-sr-1", registered_model) else None
    engines.family_path = lambda name: f"/models/{name}"  # type: ignore[assignment,return-value]
    ctx = context.current()

    by_id = submit("pairwise", {"items": [_pair(0)], "model": child_id, "swap": "none"})
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, by_id)
        assert job is not None and job.model == "judge-sr-1"
        assert job.queue == ctx.queue_name  # the root model's queue
    assert run_job(str(by_id)) == "done"
    assert engine.loaded == ["judge-sr-1"]

    again = submit("pairwise", {"items": [_pair(1)], "swap": "none"})
    assert run_job(str(again)) == "done"
    assert engine.loaded == ["judge-sr-1", registered_model]  # swapped back for the parent's job


def _announcement(redis: Redis, job_id: uuid.UUID, run: Callable[[], object]) -> bytes:
    """What the job's `?wait=` wake-up said while ``run`` ran."""
    pubsub = redis.pubsub()
    pubsub.subscribe(job_channel(job_id))
    try:
        run()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1)
            if message is not None and message["type"] == "message":
                data: bytes = message["data"]
                return data
        raise AssertionError("no wake-up was published")
    finally:
        pubsub.close()


def test_the_wake_up_carries_the_ended_job_as_the_api_reads_it(
    db: RollbackDatabase, redis: Redis, make_worker: Install, submit: Submit
) -> None:
    make_worker(longer_answer_judge)
    # Two items, both orders: one batch of 4 calls holds the whole job.
    job_id = submit("pairwise", {"items": [_pair(0), _pair(1)], "swap": "conservative"})
    announced = _announcement(redis, job_id, lambda: run_job(str(job_id)))
    with db.unit_of_work() as session:
        job = jobs_service.get_job(session, job_id, "default")
        as_read = jobs_service.job_out(job, jobs_service.all_results(session, job))
    assert as_read.status == "succeeded" and len(as_read.results or []) == 2
    assert json.loads(announced) == as_read.model_dump(mode="json")


def test_a_job_judged_over_several_batches_wakes_with_its_status_only(
    db: RollbackDatabase, redis: Redis, make_worker: Install, submit: Submit
) -> None:
    make_worker(longer_answer_judge)
    # 10 items x 2 orders: results are committed every 8 items, so the last commit holds only part
    # of the job's results.
    job_id = submit("pairwise", {"items": [_pair(i) for i in range(10)], "swap": "conservative"})
    assert _announcement(redis, job_id, lambda: run_job(str(job_id))) == b"succeeded"
    status, results = _results(db, job_id)
    assert status == "succeeded" and len(results) == 10


def test_a_nul_in_the_models_output_is_stored_as_a_replacement_character(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    # Postgres text and jsonb cannot hold U+0000: the write of the job's results failed.
    def reply(conv: Conversation) -> str:
        if conv[0]["content"] == REFERENCE_SYSTEM_PROMPT:
            return "The answer\x00 is 42."
        return "7\x00]]"

    make_worker(reply)
    job_id = submit(
        "single", {"items": [{"question": "What is 6*7?", "answer": "42"}], "reference": {"auto": True}}
    )
    assert run_job(str(job_id)) == "done"
    status, [r] = _results(db, job_id)
    # "7\ufffd" is no rating: the job's only item failed, so the job did
    assert (status, r["status"]) == ("failed", "error")
    assert r["generated_references"] == ["The answer\ufffd is 42."]
    assert r["orders"][0]["raw"] == "Rating: [[7\ufffd]]"
    assert "\x00" not in json.dumps(r, ensure_ascii=False)
