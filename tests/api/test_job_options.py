"""Options every job-creating request accepts: `metadata` (stored, returned, filterable) and
`callback_url` (a webhook called once when the job ends, signed)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.state import AppState
from app.webhooks import repository as webhooks_repo
from app.webhooks.deliverer import deliver_due
from app.webhooks.signing import verify
from tests.api.helpers import PAIR, PAIRWISE, SINGLE, SINGLE_URL, assert_error
from tests.api.test_prompt_opt import URL as PROMPT_OPT_URL
from tests.api.test_prompt_opt import body as prompt_opt_body
from tests.webhooks.receiver import Receiver, running_receiver
from tests.workers.conftest import ScriptedEngine, first_position_judge
from workers.tasks import run_job

Worker = Callable[[Callable[[Any], str]], ScriptedEngine]
SECRET = "api-test-webhook-secret"
SELF_REWARD_URL = "/v1/jobs/self-reward"


def _post(client: TestClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(url, json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def _ids(client: TestClient, *filters: str, **params: Any) -> set[str]:
    response = client.get("/v1/jobs", params={"metadata": list(filters), **params})
    assert response.status_code == 200, response.text
    return {job["id"] for job in response.json()["jobs"]}


# Metadata -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (PAIRWISE, {"items": [PAIR]}),
        (SINGLE_URL, {"items": [SINGLE]}),
        (PROMPT_OPT_URL, prompt_opt_body()),
        (SELF_REWARD_URL, {}),
    ],
    ids=["pairwise", "single", "prompt-optimization", "self-reward"],
)
def test_every_job_kind_stores_and_returns_its_metadata(
    client: TestClient, url: str, body: dict[str, Any]
) -> None:
    metadata = {"mtbench_run": "run-7", "team": "eval/core", "note": "ünïcode: ok"}
    job = _post(client, url, {**body, "metadata": metadata})
    assert job["metadata"] == metadata
    assert "metadata" not in job["params"] and "callback_url" not in job["params"]
    assert client.get(f"/v1/jobs/{job['id']}").json()["metadata"] == metadata


def test_a_job_without_metadata_shows_null(client: TestClient) -> None:
    assert _post(client, PAIRWISE, {"items": [PAIR]})["metadata"] is None


def test_jobs_are_listed_by_metadata_every_filter_matching(client: TestClient, state: AppState) -> None:
    a1 = _post(client, PAIRWISE, {"items": [PAIR], "metadata": {"run": "a", "shard": "1"}})["id"]
    a2 = _post(client, SINGLE_URL, {"items": [SINGLE], "metadata": {"run": "a", "shard": "2"}})["id"]
    b1 = _post(client, PAIRWISE, {"items": [PAIR], "metadata": {"run": "b", "shard": "1"}})["id"]
    url = _post(client, PAIRWISE, {"items": [PAIR], "metadata": {"src": "http://x:8080/a"}})["id"]
    plain = _post(client, PAIRWISE, {"items": [PAIR]})["id"]
    assert _ids(client, "run:a") == {a1, a2}
    assert _ids(client, "run:a", "shard:1") == {a1}
    assert _ids(client, "shard:1") == {a1, b1}
    assert _ids(client, "run:c") == set()
    assert _ids(client, "src:http://x:8080/a") == {url}  # the value is everything after the first ':'
    assert _ids(client, "run:a", kind="judge_single") == {a2}
    assert plain in _ids(client)
    # Paging keeps the filter.
    first = client.get("/v1/jobs", params={"metadata": "run:a", "limit": 1}).json()
    second = client.get("/v1/jobs", params={"metadata": "run:a", "cursor": first["next_cursor"]}).json()
    assert {first["jobs"][0]["id"], second["jobs"][0]["id"]} == {a1, a2}
    # Another tenant with the same labels sees only its own jobs.
    with state.db.unit_of_work() as session:
        _, other = create_key(session, "other-tenant", list(SCOPES), "other")
    response = client.get(
        "/v1/jobs", params={"metadata": "run:a"}, headers={"Authorization": f"Bearer {other}"}
    )
    assert response.json()["jobs"] == []


@pytest.mark.parametrize(
    ("metadata", "field", "says"),
    [
        ({f"k{i}": "v" for i in range(33)}, "metadata", "at most 32"),
        ({"k" * 65: "v"}, "metadata", "1 to 64 characters"),
        ({"bad key": "v"}, "metadata", "may hold only"),
        ({"note": "v" * 513}, "metadata.note", "at most 512"),
        ({"n": 1}, "metadata.n", "valid string"),
        (["not", "a", "dict"], "metadata", "valid dictionary"),
    ],
)
def test_metadata_out_of_bounds_is_422_naming_it(
    client: TestClient, metadata: Any, field: str, says: str
) -> None:
    error = assert_error(
        client.post(PAIRWISE, json={"items": [PAIR], "metadata": metadata}), 422, "validation_error", field
    )
    assert says in error["message"]


@pytest.mark.parametrize("bad", ["run", ":a", "bad key:v"])
def test_a_malformed_metadata_filter_is_422(client: TestClient, bad: str) -> None:
    assert_error(client.get("/v1/jobs", params={"metadata": bad}), 422, "validation_error", "metadata")


def test_the_same_idempotency_key_with_other_metadata_is_a_conflict(client: TestClient) -> None:
    headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = client.post(PAIRWISE, json={"items": [PAIR], "metadata": {"run": "a"}}, headers=headers)
    assert first.status_code == 202
    again = client.post(PAIRWISE, json={"items": [PAIR], "metadata": {"run": "a"}}, headers=headers)
    assert again.json()["id"] == first.json()["id"]
    other = client.post(PAIRWISE, json={"items": [PAIR], "metadata": {"run": "b"}}, headers=headers)
    assert_error(other, 409, "conflict", None)


# Callbacks ------------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def signing(state: AppState, monkeypatch: pytest.MonkeyPatch) -> AppState:
    monkeypatch.setattr(state.settings, "webhook_secret", SecretStr(SECRET))
    monkeypatch.setattr(state.settings, "public_url", "https://judge.example.com")
    return state


def _deliver(state: AppState) -> int:
    with httpx.Client(timeout=5.0) as http:
        return deliver_due(state.db, state.settings, http)


def test_callback_url_needs_the_services_signing_secret(client: TestClient, receiver: Receiver) -> None:
    error = assert_error(
        client.post(PAIRWISE, json={"items": [PAIR], "callback_url": receiver.url}),
        422,
        "validation_error",
        "callback_url",
    )
    assert "JUDGE_WEBHOOK_SECRET" in error["message"]


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", "https://", "http://h/" + "x" * 2048])
def test_a_bad_callback_url_is_422(client: TestClient, signing: AppState, url: str) -> None:
    assert_error(
        client.post(PAIRWISE, json={"items": [PAIR], "callback_url": url}),
        422,
        "validation_error",
        "callback_url",
    )


def test_a_finished_job_calls_back_once_with_a_signed_body(
    client: TestClient, signing: AppState, worker: Worker, receiver: Receiver
) -> None:
    worker(first_position_judge)
    job = _post(
        client, PAIRWISE, {"items": [PAIR] * 2, "callback_url": receiver.url, "metadata": {"run": "r"}}
    )
    assert _deliver(signing) == 0  # nothing until the job ends
    run_job(job["id"])
    assert _deliver(signing) == 1
    assert _deliver(signing) == 0
    [call] = receiver.calls
    assert verify(SECRET, call.body, call.headers["x-judge-signature"])
    body = json.loads(call.body)
    assert (body["job_id"], body["kind"], body["status"], body["progress"]) == (
        job["id"],
        "judge_pairwise",
        "succeeded",
        {"done": 2, "total": 2, "failed": 0},
    )
    assert body["metadata"] == {"run": "r"}
    assert body["results_url"] == f"https://judge.example.com/v1/jobs/{job['id']}/results"
    # The results URL answers with the results.
    assert client.get(body["results_url"].removeprefix("https://judge.example.com")).status_code == 200


def test_cancelling_a_queued_job_calls_back(
    client: TestClient, signing: AppState, receiver: Receiver
) -> None:
    job = _post(client, SINGLE_URL, {"items": [SINGLE], "callback_url": receiver.url})
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200  # a second cancel changes nothing
    assert _deliver(signing) == 1
    [call] = receiver.calls
    body = json.loads(call.body)
    assert (body["status"], body["error"]) == ("cancelled", None)
    assert verify(SECRET, call.body, call.headers["x-judge-signature"])
    with signing.db.unit_of_work() as session:
        delivery = webhooks_repo.for_job(session, uuid.UUID(job["id"]))
        assert delivery is not None and delivery.status == "delivered"
