"""Jobs for a model that cannot be served are refused with the reason (503), and `/readyz` reports the
models, and the disk, that keep jobs from running."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from redis import Redis

from app.core.state import AppState
from app.jobs.queue import queue_name
from app.models import repository as models_repo
from app.models.availability import clear_load_failure, report_load_failure
from tests.api.helpers import DEFAULT_MODEL, PAIR, PAIRWISE, assert_error


def _register(state: AppState, name: str, folder: Path) -> None:
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, name, "transformers", str(folder))


def _jobs(client: TestClient) -> int:
    return len(client.get("/v1/jobs").json()["jobs"])


def test_a_model_whose_folder_is_missing_is_refused_with_the_reason(
    client: TestClient, state: AppState, tmp_path: Path
) -> None:
    _register(state, "vanished", tmp_path / "vanished")
    response = client.post(PAIRWISE, json={"model": "vanished", "items": [PAIR]})
    error = assert_error(response, 503, "model_unavailable", "model")
    assert f"its folder {tmp_path / 'vanished'} is missing" in error["message"]
    assert _jobs(client) == 0


def test_a_model_its_workers_cannot_load_is_refused_until_one_loads_it(
    client: TestClient, redis: Redis
) -> None:
    queue = queue_name(DEFAULT_MODEL)
    report_load_failure(redis, queue, DEFAULT_MODEL, "OSError: weights truncated", "host:1:w")
    response = client.post(PAIRWISE, json={"items": [PAIR]})
    error = assert_error(response, 503, "model_unavailable", "model")
    assert error["message"] == (
        f"model '{DEFAULT_MODEL}' cannot be loaded by its workers: OSError: weights truncated"
    )
    clear_load_failure(redis, DEFAULT_MODEL, queue)  # what a worker that loads it does
    assert client.post(PAIRWISE, json={"items": [PAIR]}).status_code == 202


def test_readyz_reports_models_that_cannot_be_served(
    client: TestClient, state: AppState, redis: Redis, tmp_path: Path
) -> None:
    _register(state, "vanished", tmp_path / "vanished")
    report_load_failure(redis, queue_name(DEFAULT_MODEL), DEFAULT_MODEL, "CUDA out of memory", "host:1:w")
    response = client.get("/readyz")
    assert response.status_code == 200, response.text  # the API serves; these models' jobs are refused
    body = response.json()
    assert body["status"] == "degraded"
    assert "cannot be loaded by its workers: CUDA out of memory" in body["checks"]["models"]
    assert f"model 'vanished': its folder {tmp_path / 'vanished'} is missing" in body["checks"]["models"]


def test_readyz_is_503_when_the_disk_is_nearly_full(client: TestClient, state: AppState) -> None:
    state.settings = state.settings.model_copy(update={"min_free_disk_mb": 1 << 40})  # more than any disk
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["disk"].startswith("low: ") and "MiB free under" in body["checks"]["disk"]
