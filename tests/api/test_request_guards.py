"""Idempotent submission, the per-key rate limit, the per-tenant active-job cap and the item size limit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import func, select

from app.auth.ratelimit import RateLimiter
from app.auth.service import create_key
from app.core.state import AppState
from app.db.tables import Dataset, Job
from tests.api.helpers import assert_error

PAIR = {"question": "2 + 2?", "answer_a": "4", "answer_b": "5"}
PAIRWISE = "/v1/judgments/pairwise"


def _jobs(state: AppState) -> int:
    with state.db.unit_of_work() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_retried_submission_returns_the_first_job(client: TestClient, state: AppState) -> None:
    headers = {"Idempotency-Key": "step-41-batch-3"}
    first = client.post(PAIRWISE, json={"items": [PAIR]}, headers=headers)
    again = client.post(PAIRWISE, json={"items": [PAIR]}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert _jobs(state) == 1
    # without the header, the same body is new work
    assert client.post(PAIRWISE, json={"items": [PAIR]}).json()["id"] != first.json()["id"]


def test_the_same_key_with_another_body_is_a_conflict(client: TestClient, state: AppState) -> None:
    headers = {"Idempotency-Key": "k-1"}
    assert client.post(PAIRWISE, json={"items": [PAIR]}, headers=headers).status_code == 202
    response = client.post(PAIRWISE, json={"items": [PAIR, PAIR]}, headers=headers)
    error = assert_error(response, 409, "conflict", None)
    assert "k-1" in error["message"] and "different request" in error["message"]
    # ... and on another route
    single = {"items": [{"question": "q", "answer": "a"}]}
    assert_error(client.post("/v1/judgments/single", json=single, headers=headers), 409, "conflict", None)
    assert _jobs(state) == 1


def test_idempotency_keys_are_per_tenant(client: TestClient, state: AppState) -> None:
    with state.db.unit_of_work() as session:
        _, token = create_key(session, "acme", ["judge"])
    acme = TestClient(client.app, headers={"Authorization": f"Bearer {token}"})
    headers = {"Idempotency-Key": "shared-name"}
    mine = client.post(PAIRWISE, json={"items": [PAIR]}, headers=headers).json()["id"]
    theirs = acme.post(PAIRWISE, json={"items": [PAIR]}, headers=headers).json()["id"]
    assert mine != theirs


def test_a_retry_after_its_dataset_was_deleted_is_the_deleted_datasets_404(
    client: TestClient, state: AppState
) -> None:
    """Probe 8 of issue 17: the retry was a 409 "in progress; retry it", forever."""
    headers = {"Idempotency-Key": "upload-then-delete"}
    body = {"name": "d", "rows": [{"text": "x", "label": "a"}, {"text": "y", "label": "b"}]}
    created = client.post("/v1/datasets", json=body, headers=headers).json()["id"]
    assert client.delete(f"/v1/datasets/{created}").status_code == 204
    for _ in range(2):
        error = assert_error(client.post("/v1/datasets", json=body, headers=headers), 404, "not_found", None)
        assert created in error["message"] and "deleted" in error["message"], error
    with state.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 0
    # a new key creates it again
    again = client.post("/v1/datasets", json=body, headers={"Idempotency-Key": "upload-again"})
    assert again.status_code == 201 and again.json()["id"] != created


def test_dataset_uploads_and_long_jobs_are_idempotent(client: TestClient, state: AppState) -> None:
    headers = {"Idempotency-Key": "upload-1"}
    body = {"name": "d", "rows": [{"text": "x", "label": "a"}, {"text": "y", "label": "b"}]}
    first = client.post("/v1/datasets", json=body, headers=headers)
    again = client.post("/v1/datasets", json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    with state.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 1

    job = {
        "task_description": "t",
        "labels": ["a", "b"],
        "initial_prompt": "Label: {text}",
        "data": {"train": {"dataset_id": first.json()["id"]}},
    }
    dry = client.post(
        "/v1/jobs/prompt-optimization", json={**job, "dry_run": True}, headers={"Idempotency-Key": "po"}
    )
    assert dry.status_code == 200  # a dry run records nothing, the key included
    a = client.post("/v1/jobs/prompt-optimization", json=job, headers={"Idempotency-Key": "po"})
    b = client.post("/v1/jobs/prompt-optimization", json=job, headers={"Idempotency-Key": "po"})
    assert a.status_code == b.status_code == 202 and a.json()["id"] == b.json()["id"]


def test_the_rate_limit_answers_429_with_retry_after(
    client: TestClient, state: AppState, redis: Redis
) -> None:
    state.limiter = RateLimiter(redis, rate=0.5, burst=2)
    assert client.get("/v1/jobs").status_code == 200
    assert client.get("/v1/jobs").status_code == 200
    response = client.get("/v1/jobs")
    assert_error(response, 429, "rate_limited", None)
    assert int(response.headers["Retry-After"]) >= 1
    assert "requests/s" in response.json()["error"]["message"]
    # the bucket is per key
    with state.db.unit_of_work() as session:
        _, token = create_key(session, "default", ["judge"])
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/healthz").status_code == 200  # never limited


def test_a_tenant_over_its_active_job_cap_gets_429(client: TestClient, state: AppState) -> None:
    state.settings = state.settings.model_copy(update={"max_active_jobs_per_tenant": 2})
    assert client.post(PAIRWISE, json={"items": [PAIR]}).status_code == 202
    assert client.post(PAIRWISE, json={"items": [PAIR]}).status_code == 202
    response = client.post(PAIRWISE, json={"items": [PAIR]})
    error = assert_error(response, 429, "too_many_jobs", None)
    assert "at most 2" in error["message"] and response.headers["Retry-After"]


@pytest.mark.parametrize("limit", [300])
def test_an_item_over_the_size_limit_is_422_naming_the_limit(
    client: TestClient, state: AppState, limit: int
) -> None:
    state.settings = state.settings.model_copy(update={"max_prompt_chars": limit})
    long_item = {**PAIR, "answer_b": "x" * 400}
    response = client.post(PAIRWISE, json={"items": [PAIR, long_item]})
    error = assert_error(response, 422, "validation_error", "items[1]")
    assert f"at most {limit}" in error["message"]
