"""Service mode with a test double of the judge_client: items and options sent, results taken as they
finish, and a resumed run reattaching to the jobs it submitted before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.mtbench import formats, prompts, remote
from app.mtbench.plan import Task, plan, references_for
from app.mtbench.records import item_id
from app.mtbench.runner import RunOptions, make_batches
from judge_client import ItemResult as ClientItemResult
from judge_client import Job, NotFound, PairwiseItem, SingleItem
from tests.mtbench.conftest import TINY_BENCH

OPTIONS = RunOptions(judge_model="smol", run_name="tiny/pairwise-all/smol", seed=3)


def _tasks(mode: str = "pairwise-all") -> list[Task]:
    questions = formats.read_questions(TINY_BENCH / "question.jsonl")
    answers = formats.read_answer_dir(TINY_BENCH / "model_answer")
    refs = references_for(questions, formats.read_answers(TINY_BENCH / "reference_answer" / "gpt-4.jsonl"))
    return plan(mode, questions, answers, refs)  # type: ignore[arg-type]


def _job(job_id: str, status: str, done: int, total: int, error: str | None = None) -> Job:
    return Job.model_validate(
        {"id": job_id, "kind": "judge_pairwise", "status": status, "model": "smol", "error": error,
         "progress": {"done": done, "total": total}, "created_at": datetime.now(UTC)}
    )  # fmt: skip


class FakeService:
    """Jobs finish one item per poll; ``fail`` makes a job fail after its first item."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submitted: list[tuple[list[Any], str, dict[str, Any]]] = []
        self.fail: set[str] = set()

    def add(self, job_id: str, ids: list[str], status: str = "running") -> None:
        self.jobs[job_id] = {"ids": ids, "done": 0, "status": status}

    def submit_batch(self, items: list[Any], kind: str = "pairwise", **options: Any) -> Job:
        job_id = f"job-{len(self.submitted)}"
        self.submitted.append((items, kind, options))
        self.add(job_id, [item.id for item in items], "queued")
        return _job(job_id, "queued", 0, len(items))

    def job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise NotFound("no such job", status=404)
        state = self.jobs[job_id]
        if state["status"] in ("queued", "running"):
            state["done"] += 1
            state["status"] = "running"
            if job_id in self.fail:
                state["status"], state["error"] = "failed", "engine fell over"
            elif state["done"] >= len(state["ids"]):
                state["status"] = "succeeded"
        return _job(job_id, state["status"], state["done"], len(state["ids"]), state.get("error"))

    def results(self, job_id: str) -> Iterator[ClientItemResult]:
        state = self.jobs[job_id]
        for index, _ in enumerate(state["ids"]):
            done = index < state["done"]
            orders = [{"order": "AB", "raw": "Verdict: [[A]]", "verdict": "A"},
                      {"order": "BA", "raw": "Verdict: [[B]]", "verdict": "A"}]  # fmt: skip
            yield ClientItemResult.model_validate(
                {"index": index, "status": "ok" if done else "pending", "verdict": "A" if done else None,
                 "consistent": True, "orders": orders if done else []}
            )  # fmt: skip


def _submitter(service: FakeService, tmp_path: Path) -> remote.ServiceSubmitter:
    return remote.ServiceSubmitter(service, tmp_path / "smol_pair.jobs.jsonl", poll_seconds=0)  # type: ignore[arg-type]


def test_items_turn_by_turn() -> None:
    tasks = {
        (t.question.question_id, t.turn): t for t in _tasks("pairwise-baseline") if t.models[0] == "beta"
    }
    first = remote.to_item(tasks[(2, 1)])
    assert isinstance(first, PairwiseItem)
    assert (first.id, first.question, first.reference) == (
        "2|beta|gpt-3.5-turbo|1",
        "What is 7 times 8?",
        "7 * 8 = 56.",
    )
    assert first.turns is None and first.answer_b == "The answer is 56. (gpt-3.5-turbo)"
    second = remote.to_item(tasks[(2, 2)])
    assert isinstance(second, PairwiseItem)
    assert (
        second.turn == 2 and second.references == ["7 * 8 = 56.", "56 - 6 = 50."] and second.question is None
    )
    assert second.answers_a == ["7 times 8 is 54. (beta)", "54 minus 6 is 48. (beta)"]
    graded = remote.to_item(next(t for t in _tasks("single") if t.turn == 2 and t.question.question_id == 1))
    assert isinstance(graded, SingleItem) and graded.answers is not None and graded.references is None


def test_batches_become_jobs_and_results_stream_back(tmp_path: Path) -> None:
    service = FakeService()
    tasks = _tasks()
    batches = make_batches(tasks, prompts.builtin(), size=4)
    submitter = _submitter(service, tmp_path)
    got = list(submitter.judge(batches, OPTIONS))
    assert sorted(t.key for t, _ in got) == sorted(t.key for t in tasks)
    assert len(service.submitted) == len(batches)
    items, kind, options = service.submitted[0]
    assert kind == "pairwise" and [i.id for i in items] == batches[0].ids()
    # Jobs are tagged with the run (the service's leaderboard) and their questions' category (summaries).
    assert options.pop("metadata") == {
        "mtbench_run": "tiny/pairwise-all/smol",
        "mtbench_judge": "smol",
        "category": batches[0].tasks[0].question.category,
    }
    assert options == {"model": "smol", "template": "pairwise", "cot": False, "temperature": 0.0, "seed": 3,
                       "verdict_mode": "generate", "parser": "fastchat", "swap": "conservative"}  # fmt: skip
    outcome = got[0][1]
    assert [o.verdict for o in outcome.orders] == ["A", "A"] and outcome.orders[1].raw == "Verdict: [[B]]"
    # Every job is noted in the ledger with the ids of its items.
    ledger = remote.read_ledger(tmp_path / "smol_pair.jobs.jsonl")
    assert [e["job_id"] for e in ledger] == [f"job-{i}" for i in range(len(batches))]
    assert ledger[0]["ids"] == batches[0].ids()


def test_a_resumed_run_reattaches_to_its_live_jobs(tmp_path: Path) -> None:
    service = FakeService()
    tasks = _tasks()
    ids = [item_id(t) for t in tasks]
    ledger = tmp_path / "smol_pair.jobs.jsonl"
    remote.append_ledger(ledger, "still-running", ids[:4])
    remote.append_ledger(ledger, "failed-before", ids[4:6])
    remote.append_ledger(ledger, "forgotten", ids[6:8])  # the service no longer knows it
    service.add("still-running", ids[:4])
    service.add("failed-before", ids[4:6], "failed")
    got = list(_submitter(service, tmp_path).judge(make_batches(tasks, prompts.builtin(), size=64), OPTIONS))
    assert sorted(t.key for t, _ in got) == sorted(t.key for t in tasks)
    resubmitted = [i.id for items, _, _ in service.submitted for i in items]
    assert sorted(resubmitted) == sorted(ids[4:])  # the running job's four items were not sent again


def test_a_failed_job_stops_the_run_after_its_finished_items(tmp_path: Path) -> None:
    service = FakeService()
    service.fail.add("job-0")
    tasks = _tasks()
    batches = make_batches(tasks, prompts.builtin(), size=64)
    got: list[Task] = []
    with pytest.raises(remote.ServiceRunError, match="job job-0 failed: engine fell over .* run again"):
        for task, _ in _submitter(service, tmp_path).judge(batches, OPTIONS):
            got.append(task)
    # The other jobs were finished; of the failed one, the item it had done.
    assert len(got) == len(tasks) - len(batches[0].tasks) + 1
