"""`GET /v1/models` shows the dtype each model is served in, as the workers that load it report."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from redis import Redis

from app.core.state import AppState
from app.engine.precision import Precision
from app.jobs.queue import queue_name
from app.models import repository as models_repo
from app.models.availability import LoadReports
from tests.api.helpers import DEFAULT_MODEL


def dtypes(client: TestClient) -> dict[str, str | None]:
    response = client.get("/v1/models")
    assert response.status_code == 200, response.text
    return {m["name"]: m["dtype"] for m in response.json()["models"]}


def test_a_model_no_worker_has_loaded_has_no_dtype(client: TestClient) -> None:
    assert dtypes(client) == {DEFAULT_MODEL: None}


def test_the_dtype_a_worker_loaded_the_model_in_is_listed_and_the_latest_load_wins(
    client: TestClient, redis: Redis
) -> None:
    queue = queue_name(DEFAULT_MODEL)
    reason = "auto: the CPU has native bf16 (amx_bf16 in /proc/cpuinfo; torch capability AVX512)"
    LoadReports(redis, queue, "host-a:1").loaded(DEFAULT_MODEL, Precision("bfloat16", reason))
    assert dtypes(client) == {DEFAULT_MODEL: "bfloat16"}
    detail = client.get(f"/v1/models/{DEFAULT_MODEL}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["dtype"] == "bfloat16"
    # A worker on a CPU without bf16 loads it later: the list says what the newest worker runs.
    LoadReports(redis, queue, "host-b:1").loaded(DEFAULT_MODEL, Precision("float32", "auto: no bf16"))
    assert dtypes(client) == {DEFAULT_MODEL: "float32"}
    # A load whose engine does not say (a remote backend) changes nothing.
    LoadReports(redis, queue, "host-c:1").loaded(DEFAULT_MODEL)
    assert dtypes(client) == {DEFAULT_MODEL: "float32"}


def test_another_name_for_loaded_weights_shows_their_dtype(
    client: TestClient, redis: Redis, state: AppState, tmp_path: Path
) -> None:
    """A name registered for the default model's folder is served by its engine, in its dtype."""
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, DEFAULT_MODEL, "transformers", str(tmp_path))
        models_repo.upsert(session, "smol-terse", "transformers", str(tmp_path))
        models_repo.upsert(session, "other-judge", "transformers", str(tmp_path / "other"))
    LoadReports(redis, queue_name(DEFAULT_MODEL), "host-a:1").loaded(
        DEFAULT_MODEL, Precision("bfloat16", "auto")
    )
    assert dtypes(client) == {DEFAULT_MODEL: "bfloat16", "smol-terse": "bfloat16", "other-judge": None}
    assert client.get("/v1/models/smol-terse").json()["dtype"] == "bfloat16"
