"""Job resources: read, list with filters and cursors, results pages, cancel."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from app.core.state import AppState
from app.jobs import repository as jobs_repo
from app.jobs.queue import job_channel
from app.judging import repository as judging_repo
from app.judging.domain import CallOutput, Scale
from app.judging.swap import aggregate
from app.models import repository as models_repo
from tests.api.helpers import PAIR, PAIRWISE, SINGLE, SINGLE_URL, assert_error, with_
from tests.workers.conftest import ScriptedEngine, first_position_judge, user_text
from workers.tasks import run_job

Worker = Callable[[Callable[[Any], str]], ScriptedEngine]


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _create(client: TestClient, mode: str = "pairwise", n_items: int = 1, **options: Any) -> str:
    item = PAIR if mode == "pairwise" else SINGLE
    url = PAIRWISE if mode == "pairwise" else SINGLE_URL
    response = client.post(url, json={"items": [item] * n_items, **options})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _set_status(state: AppState, job_id: str, status: str) -> None:
    with state.db.unit_of_work() as session:
        jobs_repo.finish(session, uuid.UUID(job_id), status)


def _list(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


# Reading one job ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/results"), ("POST", "/cancel")],
    ids=["job", "results", "cancel"],
)
def test_unknown_job_is_404(client: TestClient, method: str, suffix: str) -> None:
    job_id = uuid.uuid4()
    error = assert_error(client.request(method, f"/v1/jobs/{job_id}{suffix}"), 404, "not_found", None)
    assert str(job_id) in error["message"]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/results"), ("POST", "/cancel")],
    ids=["job", "results", "cancel"],
)
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "12345", "0f8fad5b-d9cb-469f-a165-70867728950"])
def test_malformed_job_id_is_422(client: TestClient, method: str, suffix: str, bad_id: str) -> None:
    assert_error(client.request(method, f"/v1/jobs/{bad_id}{suffix}"), 422, "validation_error", "job_id")


# Listing --------------------------------------------------------------------------------------


def test_list_is_empty_without_jobs(client: TestClient) -> None:
    assert client.get("/v1/jobs").json() == {"jobs": [], "next_cursor": None}


def test_list_is_newest_first_and_pages_by_cursor(client: TestClient) -> None:
    created = [_create(client, "pairwise" if i % 2 else "single") for i in range(5)]
    assert _list(client) == created[::-1]

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", params=params).json()
        pages.append([job["id"] for job in page["jobs"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "the cursor does not advance"
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [job_id for page in pages for job_id in page] == created[::-1]


def test_exact_last_page_has_no_cursor(client: TestClient) -> None:
    created = [_create(client) for _ in range(4)]
    first = client.get("/v1/jobs", params={"limit": 2}).json()
    second = client.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == created[::-1]
    assert second["next_cursor"] is None


def test_list_filters(client: TestClient, state: AppState) -> None:
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, "other-judge", "vllm", None)
    pairwise = [_create(client, "pairwise") for _ in range(2)]
    single = _create(client, "single")
    other_model = _create(client, "pairwise", model="other-judge")
    client.post(f"/v1/jobs/{pairwise[0]}/cancel")
    _set_status(state, single, "succeeded")

    assert _list(client, kind="judge_pairwise") == [other_model, pairwise[1], pairwise[0]]
    assert _list(client, kind="judge_single") == [single]
    assert _list(client, kind="prompt_opt") == []
    unknown = client.get("/v1/jobs", params={"kind": "judge_everything"})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "kind"
    assert _list(client, status="cancelled") == [pairwise[0]]
    assert _list(client, status="succeeded") == [single]
    assert _list(client, status="queued") == [other_model, pairwise[1]]
    assert _list(client, model="other-judge") == [other_model]
    assert _list(client, model="SmolLM2-135M-Instruct", status="queued") == [pairwise[1]]
    assert _list(client, model="nobody") == []
    # Filters hold across pages.
    page = client.get("/v1/jobs", params={"kind": "judge_pairwise", "limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == [other_model, pairwise[1]]
    rest = client.get("/v1/jobs", params={"kind": "judge_pairwise", "cursor": page["next_cursor"]}).json()
    assert [j["id"] for j in rest["jobs"]] == [pairwise[0]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"kind": "judge"}, "kind"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"model": "m" * 201}, "model"),
        ({"cursor": "c" * 501}, "cursor"),
    ],
)
def test_list_bad_query(client: TestClient, params: dict[str, Any], field: str) -> None:
    assert_error(client.get("/v1/jobs", params=params), 422, "validation_error", field)


MALFORMED_JOB_CURSORS = {
    "not base64 json": "!!!not-a-cursor",
    "one character": "A",
    "not a list": _cursor({"created": "2024-01-01"}),
    "empty list": _cursor([]),
    "one element": _cursor(["2024-01-01T00:00:00+00:00"]),
    "bad date": _cursor(["yesterday", str(uuid.uuid4())]),
    "bad id": _cursor(["2024-01-01T00:00:00+00:00", "nope"]),
    "null date": _cursor([None, str(uuid.uuid4())]),
    "not utf-8": base64.urlsafe_b64encode(b"\xff\xfe[1]").decode(),
}


@pytest.mark.parametrize("cursor", MALFORMED_JOB_CURSORS.values(), ids=MALFORMED_JOB_CURSORS.keys())
def test_list_malformed_cursor_is_422(client: TestClient, cursor: str) -> None:
    error = assert_error(client.get("/v1/jobs", params={"cursor": cursor}), 422, "validation_error", "cursor")
    assert error["message"] == "malformed cursor"


# Results --------------------------------------------------------------------------------------


def test_results_page_in_item_order(client: TestClient) -> None:
    items = [with_(PAIR, id=f"item-{i}") for i in range(5)]
    job_id = client.post(PAIRWISE, json={"items": items}).json()["id"]

    seen: list[tuple[int, str]] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get(f"/v1/jobs/{job_id}/results", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["job_id"], page["status"]) == (job_id, "queued")
        sizes.append(len(page["results"]))
        seen += [(r["index"], r["id"]) for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(sizes) < 10, "the cursor does not advance"
    assert sizes == [2, 2, 1]
    assert seen == [(i, f"item-{i}") for i in range(5)]


@pytest.mark.parametrize(("limit", "sizes"), [(1, [1, 1, 1]), (3, [3]), (100, [3])])
def test_results_limit(client: TestClient, limit: int, sizes: list[int]) -> None:
    job_id = _create(client, n_items=3)
    got: list[int] = []
    cursor = None
    while True:
        page = client.get(
            f"/v1/jobs/{job_id}/results",
            params={"limit": limit, "cursor": cursor} if cursor else {"limit": limit},
        ).json()
        got.append(len(page["results"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == sizes


MALFORMED_RESULT_CURSORS = {
    "not base64 json": "%%%",
    "not a list": _cursor(3),
    "two elements": _cursor([1, 2]),
    "string index": _cursor(["1"]),
    "float index": _cursor([1.5]),
    "a job-list cursor": _cursor(["2024-01-01T00:00:00+00:00", str(uuid.uuid4())]),
}


@pytest.mark.parametrize("cursor", MALFORMED_RESULT_CURSORS.values(), ids=MALFORMED_RESULT_CURSORS.keys())
def test_results_malformed_cursor_is_422(client: TestClient, cursor: str) -> None:
    job_id = _create(client)
    response = client.get(f"/v1/jobs/{job_id}/results", params={"cursor": cursor})
    assert_error(response, 422, "validation_error", "cursor")


@pytest.mark.parametrize("index", [True, 2**31, -5], ids=["true", "2^31", "negative"])
def test_results_forged_cursor_index_is_422(client: TestClient, index: Any) -> None:
    job_id = _create(client)
    with TestClient(client.app, raise_server_exceptions=False, headers=client.headers) as c:
        response = c.get(f"/v1/jobs/{job_id}/results", params={"cursor": _cursor([index])})
    assert_error(response, 422, "validation_error", "cursor")


@pytest.mark.parametrize(("after", "indices"), [(0, [1, 2]), (2, []), (2**31 - 1, [])])
def test_results_cursor_past_either_end(client: TestClient, after: int, indices: list[int]) -> None:
    job_id = _create(client, n_items=3)
    response = client.get(f"/v1/jobs/{job_id}/results", params={"cursor": _cursor([after])})
    assert response.status_code == 200, response.text
    assert [r["index"] for r in response.json()["results"]] == indices


@pytest.mark.parametrize(("params", "field"), [({"limit": 0}, "limit"), ({"limit": 1001}, "limit")])
def test_results_bad_query(client: TestClient, params: dict[str, Any], field: str) -> None:
    job_id = _create(client)
    assert_error(client.get(f"/v1/jobs/{job_id}/results", params=params), 422, "validation_error", field)


# Cancel ---------------------------------------------------------------------------------------


def test_cancel_a_queued_job(client: TestClient, redis: Redis) -> None:
    job_id = _create(client)
    pubsub = redis.pubsub()
    pubsub.subscribe(job_channel(job_id))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]

    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["id"], job["status"]) == (job_id, "cancelled")
    assert job["finished_at"] is not None
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    # Waiting requests are woken.
    message = pubsub.get_message(timeout=1)
    assert message is not None and message["data"] == b"cancelled"
    pubsub.close()

    again = client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 200
    assert again.json() == job


def test_a_job_says_how_many_items_failed_and_which(client: TestClient, worker: Worker) -> None:
    """Items whose judge reply has no verdict fail with their cause; the job still succeeds, counts
    them in `progress.failed`, and `?status=error` lists exactly them."""
    worker(lambda conv: "no idea" if "ZZFAIL" in user_text(conv) else "A]]")
    items = [dict(PAIR, question=f"{'ZZFAIL' if i % 3 == 0 else 'fine'} question {i}") for i in range(7)]
    job_id = client.post(PAIRWISE, json={"items": items, "swap": "none"}).json()["id"]
    assert run_job(job_id) == "done"
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["progress"] == {"done": 7, "total": 7, "failed": 3}
    failed = client.get(f"/v1/jobs/{job_id}/results", params={"status": "error"}).json()["results"]
    assert [r["index"] for r in failed] == [0, 3, 6]
    assert all(r["status"] == "error" and r["error"] for r in failed)
    ok = client.get(f"/v1/jobs/{job_id}/results", params={"status": "ok", "limit": 2}).json()
    assert [r["index"] for r in ok["results"]] == [1, 2] and ok["next_cursor"]
    rest = client.get(
        f"/v1/jobs/{job_id}/results", params={"status": "ok", "cursor": ok["next_cursor"]}
    ).json()
    assert [r["index"] for r in rest["results"]] == [4, 5]


def test_a_job_whose_every_item_failed_ends_failed_with_the_reason(
    client: TestClient, worker: Worker
) -> None:
    """Issue 19, item 4: not `succeeded` with a full bar; the error names the count and the first cause,
    and the items stay readable."""
    worker(lambda conv: "no idea")
    items = [dict(PAIR, question=f"question {i}") for i in range(4)]
    job_id = client.post(PAIRWISE, json={"items": items, "swap": "none"}).json()["id"]
    assert run_job(job_id) == "done"
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["progress"] == {"done": 4, "total": 4, "failed": 4}
    first = client.get(f"/v1/jobs/{job_id}/results", params={"limit": 1}).json()["results"][0]
    assert first["status"] == "error" and first["error"]
    assert job["error"] == f"all 4 items failed: {first['error']}"


def test_results_unknown_status_filter_is_422(client: TestClient) -> None:
    job_id = _create(client)
    response = client.get(f"/v1/jobs/{job_id}/results", params={"status": "done"})
    assert_error(response, 422, "validation_error", "status")


def test_cancelled_job_is_not_run(client: TestClient, worker: Worker) -> None:
    engine = worker(first_position_judge)
    job_id = _create(client)
    client.post(f"/v1/jobs/{job_id}/cancel")
    assert run_job(job_id).startswith("skipped")
    assert engine.batches == []
    assert client.get(f"/v1/jobs/{job_id}/results").json()["results"][0]["status"] == "pending"


def test_cancel_a_running_job_leaves_the_stop_to_the_worker(client: TestClient, state: AppState) -> None:
    job_id = _create(client)
    assert client.get(f"/v1/jobs/{job_id}").json()["cancel_requested_at"] is None
    with state.db.unit_of_work() as session:
        assert jobs_repo.claim(session, uuid.UUID(job_id), "w", 60) is not None
    before = datetime.now(UTC)
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "running"
    asked = datetime.fromisoformat(job["cancel_requested_at"])
    assert before - timedelta(seconds=5) <= asked <= datetime.now(UTC) + timedelta(seconds=5)
    with state.db.unit_of_work() as session:
        assert jobs_repo.is_cancel_requested(session, uuid.UUID(job_id))
    # Asking again keeps the first time; so does the job's end.
    again = client.post(f"/v1/jobs/{job_id}/cancel").json()
    assert again["cancel_requested_at"] == job["cancel_requested_at"]
    _set_status(state, job_id, "cancelled")
    ended = client.get(f"/v1/jobs/{job_id}").json()
    assert (ended["status"], ended["cancel_requested_at"]) == ("cancelled", job["cancel_requested_at"])


def test_a_cancelled_queued_job_says_when_the_cancel_was_asked(client: TestClient) -> None:
    job_id = _create(client)
    job = client.post(f"/v1/jobs/{job_id}/cancel").json()
    assert job["status"] == "cancelled"
    assert job["cancel_requested_at"] is not None
    assert datetime.fromisoformat(job["cancel_requested_at"]) <= datetime.fromisoformat(job["finished_at"])


def test_results_show_each_call_s_queue_wait_next_to_its_engine_time(
    client: TestClient, state: AppState
) -> None:
    job_id = _create(client, swap="conservative")
    outputs = [
        CallOutput("AB", "[[A]]", tokens_in=40, tokens_out=3, latency_ms=12.5, queue_ms=230.0),
        CallOutput("BA", "[[B]]", tokens_in=41, tokens_out=3, latency_ms=11.0),
    ]
    outcome = aggregate("pairwise", "conservative", outputs, Scale())
    with state.db.unit_of_work() as session:
        (row,) = judging_repo.pending_items(session, uuid.UUID(job_id))
        judging_repo.save_outcome(session, row, outcome, {"AB": "h1", "BA": "h2"})
    (result,) = client.get(f"/v1/jobs/{job_id}/results").json()["results"]
    assert [(o["order"], o["latency_ms"], o["queue_ms"]) for o in result["orders"]] == [
        ("AB", 12.5, 230.0),
        ("BA", 11.0, 0.0),
    ]


def test_cancel_a_succeeded_job_run_in_process_is_409(client: TestClient, worker: Worker) -> None:
    worker(first_position_judge)
    job_id = _create(client)
    assert run_job(job_id) == "done"
    error = assert_error(client.post(f"/v1/jobs/{job_id}/cancel"), 409, "conflict", None)
    assert "already succeeded" in error["message"]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_cancel_an_ended_job_is_409(client: TestClient, state: AppState, status: str) -> None:
    job_id = _create(client)
    _set_status(state, job_id, status)
    error = assert_error(client.post(f"/v1/jobs/{job_id}/cancel"), 409, "conflict", None)
    assert f"already {status}" in error["message"]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == status
