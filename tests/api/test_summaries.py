"""Summaries of a judging job and of the jobs that carry some metadata."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.state import AppState
from app.jobs import repository as jobs_repo
from app.summaries import service as summaries_service
from tests.api.helpers import PAIRWISE, SINGLE_URL, assert_error
from tests.workers.conftest import ScriptedEngine, longer_answer_judge, user_text
from workers.tasks import run_job

Worker = Callable[[Callable[[Any], str]], ScriptedEngine]


def _judged(client: TestClient, url: str, body: dict[str, Any]) -> str:
    response = client.post(url, json=body)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["id"])
    assert run_job(job_id) == "done"
    return job_id


def test_a_pairwise_job_against_a_baseline(client: TestClient, worker: Worker) -> None:
    """A judge that prefers the longer answer: the model with the longer answers wins 6 of 8, its
    length-controlled win rate is reported beside it, and both orders agreeing keeps consistency at 1."""
    worker(longer_answer_judge)
    items = [
        {"question": f"q{i}", "answer_a": "long answer " * (1 + i % 4), "answer_b": "mid answer " * 2}
        for i in range(8)
    ]
    body = {"items": items, "metadata": {"model_a": "tuned", "model_b": "base"}}
    job_id = _judged(client, PAIRWISE, body)
    response = client.get(f"/v1/jobs/{job_id}/summary", params={"rounds": 200, "seed": 3})
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["jobs"] == [job_id]
    assert (summary["bootstrap_rounds"], summary["seed"], summary["baseline"]) == (200, 3, "base")
    figures = summary["figures"]
    assert (figures["items"], figures["ok"], figures["swapped"], figures["consistency_rate"]) == (
        8,
        8,
        8,
        1.0,
    )
    assert figures["first_position_rate"] == 0.5
    tuned = next(r for r in summary["win_rates"] if r["model"] == "tuned")
    # "long answer " once is shorter than "mid answer " twice: items 0 and 4 go to the baseline.
    assert (tuned["wins"], tuned["losses"], tuned["ties"], tuned["win_rate"]) == (6, 2, 0, 0.75)
    assert tuned["win_rate_interval"]["low"] < 0.75 < tuned["win_rate_interval"]["high"]
    (lc,) = summary["length_controlled"]
    assert (lc["model"], lc["games"], lc["win_rate"]) == ("tuned", 8, 0.75)
    assert 0.0 <= lc["length_controlled_win_rate"] <= 1.0
    assert summary["ratings"] == []
    again = client.get(f"/v1/jobs/{job_id}/summary", params={"rounds": 200, "seed": 3}).json()
    assert again == summary


def test_grading_jobs_selected_by_metadata(client: TestClient, worker: Worker) -> None:
    """Two tagged grading jobs (one per category) and one untagged: scores per model and per category."""
    worker(lambda conv: "9]]" if "good" in user_text(conv) else "4]]")
    for category, answer in (("math", "good"), ("writing", "poor")):
        meta = {"run": "r1", "model_a": "m", "category": category}
        items = [{"question": f"{category} {i}", "answer": answer} for i in range(3)]
        _judged(client, SINGLE_URL, {"items": items, "metadata": meta})
    _judged(client, SINGLE_URL, {"items": [{"question": "x", "answer": "good"}]})
    response = client.get("/v1/summary", params={"metadata": "run:r1", "rounds": 50})
    assert response.status_code == 200, response.text
    summary = response.json()
    assert len(summary["jobs"]) == 2
    assert [(s["model"], s["category"], s["count"], s["mean"]) for s in summary["scores"]] == [
        ("m", None, 6, 6.5),
        ("m", "math", 3, 9.0),
        ("m", "writing", 3, 4.0),
    ]
    assert summary["win_rates"] == [] and summary["figures"]["consistency_rate"] is None


def test_mtbench_ids_name_the_models_and_every_pair_gets_ratings(client: TestClient, worker: Worker) -> None:
    worker(longer_answer_judge)
    answers = {"x": "a very long answer indeed", "y": "medium answer", "z": "short"}
    items = [
        {
            "id": f"{q}|{m1}|{m2}|1",
            "question": f"question {q}",
            "answer_a": answers[m1],
            "answer_b": answers[m2],
        }
        for q in range(1, 4)
        for m1, m2 in (("x", "y"), ("x", "z"), ("y", "z"))
    ]
    _judged(client, PAIRWISE, {"items": items, "metadata": {"mtbench_run": "r"}})
    summary = client.get("/v1/summary", params={"metadata": "mtbench_run:r", "rounds": 20}).json()
    assert summary["baseline"] is None and summary["length_controlled"] == []
    assert [r["model"] for r in summary["ratings"]] == ["x", "y", "z"]
    assert [(r["model"], r["win_rate"]) for r in summary["win_rates"]] == [("x", 1.0), ("y", 0.5), ("z", 0.0)]


def test_errors(client: TestClient, state: AppState) -> None:
    missing = uuid.uuid4()
    assert_error(client.get(f"/v1/jobs/{missing}/summary"), 404, "not_found", None)
    assert_error(client.get("/v1/summary", params={"metadata": "run:none"}), 404, "not_found", "metadata")
    assert_error(
        client.get("/v1/summary", params={"metadata": "nocolon"}), 422, "validation_error", "metadata"
    )
    too_many = state.settings.max_summary_bootstrap_rounds + 1
    with state.db.unit_of_work() as session:
        job = jobs_repo.create_job(
            session, kind="judge_pairwise", model="m", queue="q", params={}, total=0, tenant="default"
        )
    response = client.get(f"/v1/jobs/{job.id}/summary", params={"rounds": too_many})
    assert_error(response, 422, "validation_error", "rounds")


def test_an_ended_jobs_summary_is_remembered_and_a_running_ones_is_not(
    client: TestClient, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second view of an ended job's summary (a dashboard page reloaded) reads no items and refits
    nothing; other options, or a job that joins the metadata selection, are computed afresh."""
    worker(longer_answer_judge)
    item = {"question": "q", "answer_a": "a long answer", "answer_b": "b"}
    body = {"items": [item], "metadata": {"run": "c"}, "cache": "off"}
    job_id = _judged(client, PAIRWISE, body)
    reads: list[int] = []
    read_items = summaries_service._items

    def counted(session: Any, jobs: list[Any]) -> Any:
        reads.append(len(jobs))
        return read_items(session, jobs)

    monkeypatch.setattr(summaries_service, "_items", counted)
    first = client.get(f"/v1/jobs/{job_id}/summary", params={"rounds": 20}).json()
    assert client.get(f"/v1/jobs/{job_id}/summary", params={"rounds": 20}).json() == first
    assert reads == [1]
    client.get(f"/v1/jobs/{job_id}/summary", params={"rounds": 20, "seed": 1}).raise_for_status()
    assert reads == [1, 1]
    # The same one job selected by its metadata: the same summary, already known.
    assert client.get("/v1/summary", params={"metadata": "run:c", "rounds": 20}).json() == first
    second = _judged(client, PAIRWISE, body)
    both = client.get("/v1/summary", params={"metadata": "run:c", "rounds": 20}).json()
    assert set(both["jobs"]) == {job_id, second} and reads == [1, 1, 2]
    # A job still running: its summary is read every time.
    queued = client.post(PAIRWISE, json=body).json()["id"]
    for _ in range(2):
        client.get(f"/v1/jobs/{queued}/summary", params={"rounds": 20}).raise_for_status()
    assert reads == [1, 1, 2, 1, 1]
