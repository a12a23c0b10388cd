"""The model registry over HTTP: a model's detail and lineage, tenant visibility, and judging with a
trained model (named by id or name, served from its root model's queue)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from app.auth.service import create_key
from app.core.state import AppState
from app.jobs import repository as jobs_repo
from app.models import repository as models_repo
from tests.api.helpers import DEFAULT_MODEL, DEFAULT_QUEUE, PAIR, PAIRWISE, assert_error


@dataclass(frozen=True)
class Lineage:
    """The default model (an operator model) -> sr-1 -> sr-2, trained by one job of this tenant, and
    a sibling of sr-1 trained by another tenant."""

    root_id: str
    job_id: str
    sr1_id: str
    sr2_id: str
    foreign_id: str


@pytest.fixture
def lineage(state: AppState) -> Lineage:
    with state.db.unit_of_work() as session:
        root = models_repo.get_by_name(session, DEFAULT_MODEL)
        assert root is not None
        job = jobs_repo.create_job(
            session,
            kind="self_reward",
            model=DEFAULT_MODEL,
            queue=DEFAULT_QUEUE,
            params={},
            total=3,
            tenant="default",
        )

        def train(name: str, parent: uuid.UUID, iteration: int, owner: str) -> uuid.UUID:
            return models_repo.register_trained(
                session,
                name=name,
                backend="transformers",
                artifact_path=f"/models/{name}",
                parent_id=parent,
                job_id=job.id,
                iteration=iteration,
                metrics={"dpo": {"loss": 0.5}},
                owner=owner,
            ).id

        sr1 = train("smol-sr-1", root.id, 1, "default")
        sr2 = train("smol-sr-2", sr1, 2, "default")
        foreign = train("acme-sr-1", root.id, 1, "acme")
        return Lineage(str(root.id), str(job.id), str(sr1), str(sr2), str(foreign))


# Detail and lineage ------------------------------------------------------------------------------


def test_detail_of_a_trained_model_by_id_or_name(client: TestClient, lineage: Lineage) -> None:
    by_id = client.get(f"/v1/models/{lineage.sr1_id}")
    assert by_id.status_code == 200, by_id.text
    detail = by_id.json()
    assert detail == client.get("/v1/models/smol-sr-1").json()
    assert detail["id"] == lineage.sr1_id
    assert detail["name"] == "smol-sr-1"
    assert detail["backend"] == "transformers"
    assert detail["default"] is False
    assert detail["artifact_path"] == "/models/smol-sr-1"
    assert (detail["parent_id"], detail["job_id"], detail["iteration"]) == (
        lineage.root_id,
        lineage.job_id,
        1,
    )
    assert detail["metrics"] == {"dpo": {"loss": 0.5}}
    assert detail["lineage"] == [
        {"id": lineage.root_id, "name": DEFAULT_MODEL, "iteration": None, "job_id": None}
    ]
    # Another tenant's sibling is not among the root's children, and this model's child is listed.
    assert detail["children"] == [
        {"id": lineage.sr2_id, "name": "smol-sr-2", "iteration": 2, "job_id": lineage.job_id}
    ]


def test_lineage_runs_from_the_parent_to_the_root(client: TestClient, lineage: Lineage) -> None:
    detail = client.get("/v1/models/smol-sr-2").json()
    assert [m["name"] for m in detail["lineage"]] == ["smol-sr-1", DEFAULT_MODEL]
    assert detail["children"] == []


def test_detail_of_the_default_model(client: TestClient, lineage: Lineage) -> None:
    response = client.get(f"/v1/models/{DEFAULT_MODEL}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["default"] is True
    assert detail["parent_id"] is None and detail["lineage"] == []
    assert [m["name"] for m in detail["children"]] == ["smol-sr-1"]


@pytest.mark.parametrize("ref", ["no-such-model", "00000000-0000-0000-0000-000000000000", "acme-sr-1"])
def test_unknown_or_foreign_model_is_404(client: TestClient, lineage: Lineage, ref: str) -> None:
    assert_error(client.get(f"/v1/models/{ref}"), 404, "not_found", None)


def test_another_tenants_model_is_404_by_id(client: TestClient, lineage: Lineage) -> None:
    error = assert_error(client.get(f"/v1/models/{lineage.foreign_id}"), 404, "not_found", None)
    assert "acme-sr-1" not in error["message"]


def test_list_hides_other_tenants_models(client: TestClient, lineage: Lineage) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200, response.text
    models = {m["name"]: m for m in response.json()["models"]}
    assert set(models) == {DEFAULT_MODEL, "smol-sr-1", "smol-sr-2"}
    assert models["smol-sr-2"]["parent_id"] == lineage.sr1_id
    assert "artifact_path" not in models["smol-sr-2"]


def test_operator_models_are_visible(client: TestClient, state: AppState) -> None:
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, "operator-judge", "vllm", "/models/operator-judge")
    response = client.get("/v1/models/operator-judge")
    assert response.status_code == 200, response.text
    assert response.json()["artifact_path"] == "/models/operator-judge"


def test_a_models_folder_is_shown_to_operators_only(client: TestClient, state: AppState) -> None:
    """Issue 17 probe 10: every key read the server's `artifact_path`."""
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, "operator-judge", "vllm", "/models/operator-judge")
        _, token = create_key(session, "default", ["judge", "jobs"], "tenant key")
    tenant = TestClient(client.app, headers={"Authorization": f"Bearer {token}"})
    response = tenant.get("/v1/models/operator-judge")
    assert response.status_code == 200, response.text
    assert response.json()["artifact_path"] is None
    assert "/models/" not in response.text


# Judging with a trained model --------------------------------------------------------------------


def _queued(redis: Redis, queue: str) -> list[str]:
    return Queue(queue, connection=redis).job_ids


def test_a_trained_model_by_id_is_judged_on_its_root_models_queue(
    client: TestClient, redis: Redis, lineage: Lineage
) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR], "model": lineage.sr2_id})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["model"] == "smol-sr-2"
    assert _queued(redis, DEFAULT_QUEUE) == [f"{job['id']}_0"]
    assert _queued(redis, "judge.smol-sr-2") == [] and _queued(redis, "judge.smol-sr-1") == []


def test_a_trained_model_by_name_is_judged_on_its_root_models_queue(
    client: TestClient, redis: Redis, lineage: Lineage
) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR], "model": "smol-sr-1"})
    assert response.status_code == 202, response.text
    assert response.json()["model"] == "smol-sr-1"
    assert _queued(redis, DEFAULT_QUEUE) == [f"{response.json()['id']}_0"]


def test_names_registered_for_the_same_weights_are_judged_on_one_queue(
    client: TestClient, redis: Redis, state: AppState, tmp_path: Path
) -> None:
    """A second name for the default model's folder (its own template, say, for a jury) goes to the
    default model's queue, whose workers serve it with the engine they hold; another folder has its
    own queue."""
    folder, other = tmp_path / "smol", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, DEFAULT_MODEL, "transformers", str(folder))
        models_repo.upsert(session, "smol-terse", "transformers", str(folder))
        models_repo.upsert(session, "other-judge", "transformers", str(other))
        models_repo.upsert(session, "remote-judge", "openai", str(folder))  # never shares an engine
        terse = models_repo.get_by_name(session, "smol-terse")
        assert terse is not None
        assert models_repo.weights_owner(session, terse).name == DEFAULT_MODEL
        # The registry-wide form (GET /v1/models: one query) names the same owners.
        registry = models_repo.list_models(session)
        assert models_repo.weights_owners(registry) == {
            m.name: models_repo.weights_owner(session, m).name for m in registry
        }
        assert models_repo.weights_owners(registry)["remote-judge"] == "remote-judge"
    jobs = {}
    for model in ("smol-terse", "other-judge"):
        response = client.post(PAIRWISE, json={"items": [PAIR], "model": model})
        assert response.status_code == 202, response.text
        assert response.json()["model"] == model
        jobs[model] = response.json()["id"]
    assert _queued(redis, DEFAULT_QUEUE) == [f"{jobs['smol-terse']}_0"]
    assert _queued(redis, "judge.smol-terse") == []
    assert _queued(redis, "judge.other-judge") == [f"{jobs['other-judge']}_0"]


@pytest.mark.parametrize("by", ["name", "id"])
def test_another_tenants_model_is_an_unknown_model(
    client: TestClient, redis: Redis, lineage: Lineage, by: str
) -> None:
    ref = "acme-sr-1" if by == "name" else lineage.foreign_id
    response = client.post(PAIRWISE, json={"items": [PAIR], "model": ref})
    error = assert_error(response, 422, "validation_error", "model")
    assert error["message"].startswith(f"unknown model '{ref}'")
    assert "acme-sr-1" not in error["message"].removeprefix(f"unknown model '{ref}'")  # not listed either
    assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [lineage.job_id]  # only the trainer
    assert _queued(redis, DEFAULT_QUEUE) == []
