"""`GET /v1/jobs/{id}/deliveries` (issue 19, item 7): every attempt of a job's webhook, as the deliverer
made it against a real receiver on loopback: time, status code, error, next retry; tenant-scoped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.state import AppState
from app.webhooks.deliverer import deliver_due
from tests.api.helpers import PAIR, PAIRWISE, assert_error
from tests.webhooks.receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def signing(state: AppState, monkeypatch: pytest.MonkeyPatch) -> AppState:
    monkeypatch.setattr(state.settings, "webhook_secret", SecretStr("deliveries-test-secret"))
    monkeypatch.setattr(state.settings, "webhook_retry_backoff_seconds", 0.0)
    return state


def _deliver(state: AppState) -> int:
    with httpx.Client(timeout=5.0) as http:
        return deliver_due(state.db, state.settings, http)


def _ended_job(client: TestClient, callback_url: str | None) -> str:
    """A job with this callback, ended (cancelled while queued: its callback is due at once)."""
    body: dict[str, Any] = {"items": [PAIR], "cache": "off"}
    if callback_url is not None:
        body["callback_url"] = callback_url
    response = client.post(PAIRWISE, json=body)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["id"])
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    return job_id


def _deliveries(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/jobs/{job_id}/deliveries")
    assert response.status_code == 200, response.text
    assert response.json()["job_id"] == job_id
    return list(response.json()["deliveries"])


def test_every_attempt_is_listed_until_the_receiver_answers_2xx(
    client: TestClient, signing: AppState, receiver: Receiver
) -> None:
    job_id = _ended_job(client, receiver.url)
    [due] = _deliveries(client, job_id)
    assert (due["url"], due["status"], due["attempts"], due["delivered_at"]) == (
        receiver.url,
        "pending",
        [],
        None,
    )
    assert due["next_attempt_at"] is not None

    receiver.statuses = [500, 503]
    assert [_deliver(signing) for _ in range(4)] == [1, 1, 1, 0]
    [delivery] = _deliveries(client, job_id)
    assert delivery["event_id"] == due["event_id"] == receiver.calls[0].headers["x-judge-event-id"]
    assert (delivery["status"], delivery["next_attempt_at"]) == ("delivered", None)
    attempts = delivery["attempts"]
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts] == [
        (1, "retrying", 500),
        (2, "retrying", 503),
        (3, "delivered", 200),
    ]
    assert attempts[0]["error"] == "HTTP 500: receiver says no" and attempts[2]["error"] is None
    assert attempts[0]["next_attempt_at"] is not None and attempts[2]["next_attempt_at"] is None
    times = [datetime.fromisoformat(a["attempted_at"]) for a in attempts]
    assert times == sorted(times) and all(a["duration_ms"] >= 0 for a in attempts)
    assert datetime.fromisoformat(delivery["delivered_at"]) >= times[-1]
    # The attempt numbers are those the receiver was told.
    assert [c.headers["x-judge-delivery-attempt"] for c in receiver.calls] == ["1", "2", "3"]


def test_the_last_attempt_gives_up_and_an_unreachable_receiver_has_no_status_code(
    client: TestClient, signing: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing.settings, "webhook_max_attempts", 2)
    with running_receiver() as gone:
        url = gone.url  # nothing listens there once the receiver has stopped
    job_id = _ended_job(client, url)
    assert _deliver(signing) == 1 and _deliver(signing) == 1 and _deliver(signing) == 0
    [delivery] = _deliveries(client, job_id)
    assert delivery["status"] == "failed"
    assert [(a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [
        ("retrying", None),
        ("failed", None),
    ]
    assert all(a["error"] and "Connect" in a["error"] for a in delivery["attempts"])
    assert delivery["attempts"][1]["next_attempt_at"] is None


def test_a_job_without_a_callback_has_none_and_another_tenants_job_is_not_found(
    client: TestClient, signing: AppState, state: AppState, receiver: Receiver
) -> None:
    assert _deliveries(client, _ended_job(client, None)) == []
    job_id = _ended_job(client, receiver.url)
    with state.db.unit_of_work() as session:
        _, token = create_key(session, "acme", list(SCOPES), "another tenant")
    foreign = client.get(f"/v1/jobs/{job_id}/deliveries", headers={"Authorization": f"Bearer {token}"})
    assert_error(foreign, 404, "not_found", None)
    assert_error(client.get(f"/v1/jobs/{uuid.uuid4()}/deliveries"), 404, "not_found", None)
    assert_error(client.get("/v1/jobs/not-a-job/deliveries"), 422, "validation_error", "job_id")
