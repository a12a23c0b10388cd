"""Probes, the model registry, and the published API contract."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.core.state import AppState
from app.models import repository as models_repo
from tests.api.helpers import DEFAULT_MODEL


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {}}


def test_readyz(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "queue": "ok", "disk": "ok", "models": "ok"},
    }


def test_readyz_is_503_when_the_queue_is_unreachable(
    client: TestClient, state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(state, "redis", unreachable)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["queue"].startswith("ConnectionError")
    # Liveness does not depend on the queue.
    assert client.get("/healthz").status_code == 200
    unreachable.close()


def test_models_lists_the_default_model(client: TestClient) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200, response.text
    [model] = response.json()["models"]
    uuid.UUID(model["id"])
    datetime.fromisoformat(model["created_at"])
    assert {k: v for k, v in model.items() if k not in ("id", "created_at")} == {
        "name": DEFAULT_MODEL,
        "backend": "transformers",
        "parent_id": None,
        "job_id": None,
        "iteration": None,
        "metrics": {},
        "default": True,
        "dtype": None,
    }


def test_models_marks_only_the_default(client: TestClient, state: AppState) -> None:
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, "another-judge", "vllm", "/models/another")
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert {name: m["default"] for name, m in models.items()} == {DEFAULT_MODEL: True, "another-judge": False}
    assert models["another-judge"]["backend"] == "vllm"
    assert "artifact_path" not in models["another-judge"]


def test_openapi_operation_ids_are_stable(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation_ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert operation_ids == {
        "healthz",
        "readyz",
        "judge_pairwise",
        "judge_single",
        "list_templates",
        "create_template",
        "list_jobs",
        "get_job",
        "get_job_results",
        "get_job_summary",
        "get_jobs_summary",
        "cancel_job",
        "stream_job_events",
        "list_job_deliveries",
        "list_models",
        "get_model",
        "create_prompt_optimization_job",
        "create_self_reward_job",
        "create_dataset",
        "list_datasets",
        "get_dataset",
        "get_dataset_rows",
        "delete_dataset",
    }
