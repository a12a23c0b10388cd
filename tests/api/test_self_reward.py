"""Self-reward jobs over HTTP: submission (shipped seed data, inline rows or datasets), validation, and
the results of a queued job."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from app.core.state import AppState
from app.datasets.schemas import DatasetIn
from app.datasets.service import create_dataset
from app.datasets.upload import Upload
from app.models import repository as models_repo
from app.self_reward import seed_data
from tests.api.helpers import DEFAULT_MODEL, DEFAULT_QUEUE, assert_error

URL = "/v1/jobs/self-reward"
HELDOUT_PROMPTS = len({ex.prompt for ex in seed_data.eft_examples("heldout")})


def ift(n: int) -> list[dict[str, str]]:
    return [{"prompt": f"Name a fruit ({i}).", "response": f"Apple number {i}."} for i in range(n)]


def eft(score: int, judgment_score: str | None = None, prompt: str = "Name a fruit.") -> dict[str, Any]:
    said = str(score) if judgment_score is None else judgment_score
    return {
        "prompt": prompt,
        "response": "Apple.",
        "judgment": f"Relevant and correct but terse.\nScore: {said}",
        "score": score,
    }


def _dataset(client: TestClient, rows: list[dict[str, Any]], name: str) -> str:
    response = client.post("/v1/datasets", json={"name": name, "rows": rows})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _eft_dataset_rows(n: int) -> list[dict[str, Any]]:
    """EFT rows as a dataset holds them: the score is the label."""
    return [{**{k: v for k, v in eft(i % 6).items() if k != "score"}, "label": i % 6} for i in range(n)]


def _submit(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(URL, json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def _results(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}/results")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _queued(redis: Redis) -> list[str]:
    return Queue(DEFAULT_QUEUE, connection=redis).job_ids


# Accepted submissions ----------------------------------------------------------------------------


def test_default_submission_uses_the_shipped_data_and_queues_a_job(client: TestClient, redis: Redis) -> None:
    job = _submit(client, {})
    assert job["kind"] == "self_reward"
    assert job["status"] == "queued"
    assert job["model"] == DEFAULT_MODEL
    assert job["progress"] == {"done": 0, "total": 3, "failed": 0}  # SFT, then 2 DPO iterations
    assert job["params"]["base_model"] == DEFAULT_MODEL
    assert (job["params"]["prompt_generation"], job["params"]["prompt_generator"]) == ("fixed", None)
    assert (
        job["params"]["ift"] is None and job["params"]["eft"] is None
    )  # the shipped data, read by the worker
    assert _queued(redis) == [f"{job['id']}_0"]
    assert client.get(f"/v1/jobs/{job['id']}").json() == job

    assert _results(client, job["id"]) == {
        "job_id": job["id"],
        "status": "queued",
        "stage": None,
        "stop_reason": None,
        "base_model": DEFAULT_MODEL,
        "final_model": None,
        "iterations": [],
    }


def test_mt_may_write_the_prompts_instead_of_the_fixed_generator(client: TestClient) -> None:
    job = _submit(client, {"prompt_generation": "current"})
    assert (job["params"]["prompt_generation"], job["params"]["prompt_generator"]) == ("current", None)


def test_progress_counts_one_step_per_iteration_without_sft(client: TestClient) -> None:
    job = _submit(client, {"iterations": 4, "sft": {"enabled": False}})
    assert job["progress"] == {"done": 0, "total": 4, "failed": 0}


def test_inline_seed_data_is_recorded(client: TestClient) -> None:
    body = {
        "ift": {"rows": ift(3)},
        "eft": {"rows": [eft(4), eft(0)]},
        "eft_heldout": {"rows": [eft(2), eft(5), eft(1, prompt="Name a vegetable.")]},
        "evaluation": {"heldout_prompts": 2},
    }
    job = _submit(client, body)
    assert job["params"]["ift"] == {"dataset_id": None, "rows": ift(3)}
    assert job["params"]["eft"]["rows"][0] == eft(4)
    assert job["params"]["evaluation"]["heldout_prompts"] == 2


def test_seed_data_from_datasets(client: TestClient) -> None:
    ift_id = _dataset(client, [{**row, "label": "-"} for row in ift(4)], "ift")
    eft_id = _dataset(client, _eft_dataset_rows(6), "eft")
    body = {
        "ift": {"dataset_id": ift_id},
        "eft": {"dataset_id": eft_id},
        "eft_heldout": {"dataset_id": eft_id},
        "evaluation": {"heldout_prompts": 1},  # six responses to one prompt
    }
    job = _submit(client, body)
    assert job["params"]["ift"] == {"dataset_id": ift_id, "rows": None}
    assert job["params"]["eft_heldout"] == {"dataset_id": eft_id, "rows": None}


def test_a_trained_base_model_by_id_runs_on_its_root_models_queue(
    client: TestClient, state: AppState, redis: Redis
) -> None:
    with state.db.unit_of_work() as session:
        root = models_repo.get_by_name(session, DEFAULT_MODEL)
        assert root is not None
        helper_id = str(models_repo.upsert(session, "helper-llm", "vllm", "/models/helper-llm").id)
        trained = models_repo.register_trained(
            session,
            name="smol-sr-1",
            backend="transformers",
            artifact_path="/models/smol-sr-1",
            parent_id=root.id,
            job_id=None,  # type: ignore[arg-type]
            iteration=1,
            metrics={},
            owner="default",
        )
        trained_id = str(trained.id)

    job = _submit(client, {"base_model": trained_id, "prompt_generator": helper_id})
    assert job["model"] == "smol-sr-1"
    # Ids are recorded as names: the worker loads models by name.
    assert job["params"]["base_model"] == "smol-sr-1"
    assert job["params"]["prompt_generator"] == "helper-llm"
    assert _queued(redis) == [f"{job['id']}_0"]
    assert _results(client, job["id"])["base_model"] == "smol-sr-1"


# Rejected submissions ----------------------------------------------------------------------------


def _reject(client: TestClient, redis: Redis, body: dict[str, Any], field: str | None, fragment: str) -> None:
    error = assert_error(client.post(URL, json=body), 422, "validation_error", field)
    assert fragment in error["message"], error
    # Nothing was recorded or enqueued.
    assert client.get("/v1/jobs").json()["jobs"] == []
    assert _queued(redis) == []


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"base_model": "nope"}, "base_model", "unknown model 'nope'"),
        ({"base_model": str(uuid.UUID(int=0))}, "base_model", "unknown model"),
        ({"prompt_generator": "nope"}, "prompt_generator", "unknown model 'nope'"),
        (
            {"prompt_generation": "current", "prompt_generator": DEFAULT_MODEL},
            "prompt_generator",
            "prompt_generation 'current' has M_t write",
        ),
        (
            {"dpo": {"learning_rate": 1e-7, "min_learning_rate": 2e-7}},
            "dpo.min_learning_rate",
            "cannot exceed dpo.learning_rate",
        ),
        ({"instruct": {"shots": 4, "seed_shots": 5}}, "instruct.seed_shots", "cannot exceed instruct.shots"),
        ({"instruct": {"min_words": 20, "max_words": 10}}, "instruct.min_words", "cannot exceed"),
        (
            {"eft": {"rows": [eft(4), eft(3, "2")]}},
            "eft.rows[1]",
            "judgment's score is 2 but the example states 3",
        ),
        ({"eft": {"rows": [eft(3, "")]}}, "eft.rows[0]", "no usable score"),
        ({"eft": {"rows": [eft(3, "9")]}}, "eft.rows[0]", "outside 0-5"),
        ({"eft_heldout": {"rows": [eft(1, "4")]}}, "eft_heldout.rows[0]", "example states 1"),
        ({"ift": {"rows": ift(1)}}, "ift", "at least 2 IFT examples"),
        (
            {"evaluation": {"heldout_prompts": HELDOUT_PROMPTS + 1}},
            "evaluation.heldout_prompts",
            f"held-out EFT data has {HELDOUT_PROMPTS} distinct prompts",
        ),
        (
            # Two responses to one prompt: one prompt to answer.
            {"eft_heldout": {"rows": [eft(1), eft(2)]}, "evaluation": {"heldout_prompts": 2}},
            "evaluation.heldout_prompts",
            "has 1 distinct prompts",
        ),
        ({"ift": {"dataset_id": str(uuid.UUID(int=7))}}, "ift.dataset_id", "unknown dataset"),
        ({"eft": {"dataset_id": str(uuid.UUID(int=7))}}, "eft.dataset_id", "unknown dataset"),
        ({"eft_heldout": {"dataset_id": str(uuid.UUID(int=7))}}, "eft_heldout.dataset_id", "unknown dataset"),
        # Schema checks:
        ({"ift": {"rows": ift(2), "dataset_id": str(uuid.UUID(int=7))}}, "ift", "exactly one of"),
        ({"eft": {}}, "eft", "exactly one of"),
        ({"eft": {"rows": [eft(6)]}}, "eft.rows[0].score", "less than or equal to 5"),
        ({"eft": {"rows": [{**eft(3), "score": "3"}]}}, "eft.rows[0].score", "valid integer"),
        ({"iterations": 0}, "iterations", "greater than or equal to 1"),
        ({"candidates": {"n": 1}}, "candidates.n", "greater than or equal to 2"),
        ({"dpo": {"loss_type": "kto"}}, "dpo.loss_type", "sigmoid"),
        ({"judge": {"samplez": 3}}, "judge.samplez", "Extra inputs are not permitted"),
    ],
    ids=[
        "unknown-base-model",
        "unknown-base-model-id",
        "unknown-prompt-generator",
        "prompt-generator-with-current",
        "min-learning-rate-above-learning-rate",
        "seed-shots-above-shots",
        "min-words-above-max-words",
        "eft-judgment-score-differs",
        "eft-judgment-without-score",
        "eft-judgment-score-out-of-range",
        "heldout-judgment-score-differs",
        "one-ift-example",
        "heldout-prompts-above-shipped-heldout",
        "heldout-prompts-above-inline-heldout",
        "unknown-ift-dataset",
        "unknown-eft-dataset",
        "unknown-heldout-dataset",
        "ift-rows-and-dataset",
        "eft-without-source",
        "eft-score-above-5",
        "eft-score-as-text",
        "no-iterations",
        "one-candidate",
        "unknown-loss",
        "extra-nested-field",
    ],
)
def test_invalid_request_is_422_naming_the_field(
    client: TestClient, redis: Redis, body: dict[str, Any], field: str, fragment: str
) -> None:
    _reject(client, redis, body, field, fragment)


def test_unknown_base_model_lists_the_registered_models(client: TestClient, redis: Redis) -> None:
    _reject(client, redis, {"base_model": "nope"}, "base_model", f"(registered models: {DEFAULT_MODEL})")


def test_another_tenants_model_is_an_unknown_base_model(
    client: TestClient, state: AppState, redis: Redis
) -> None:
    with state.db.unit_of_work() as session:
        root = models_repo.get_by_name(session, DEFAULT_MODEL)
        assert root is not None
        models_repo.register_trained(
            session,
            name="acme-sr-1",
            backend="transformers",
            artifact_path="/models/acme-sr-1",
            parent_id=root.id,
            job_id=None,  # type: ignore[arg-type]
            iteration=1,
            metrics={},
            owner="acme",
        )
    _reject(client, redis, {"base_model": "acme-sr-1"}, "base_model", "unknown model 'acme-sr-1'")
    _reject(client, redis, {"prompt_generator": "acme-sr-1"}, "prompt_generator", "unknown model 'acme-sr-1'")


def test_a_remote_base_model_is_rejected(client: TestClient, state: AppState, redis: Redis) -> None:
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, "gpt-remote", "openai", None)
    _reject(client, redis, {"base_model": "gpt-remote"}, "base_model", "local weights")


def test_another_tenants_dataset_is_unknown(client: TestClient, state: AppState, redis: Redis) -> None:
    upload = Upload(
        DatasetIn.model_validate({"name": "theirs", "rows": [{**r, "label": "-"} for r in ift(3)]})
    )
    with state.db.unit_of_work() as session:
        theirs = create_dataset(session, "other", upload, 10).id
    _reject(
        client, redis, {"ift": {"dataset_id": str(theirs)}}, "ift.dataset_id", f"unknown dataset {theirs}"
    )


def test_ift_dataset_without_a_response_field(client: TestClient, redis: Redis) -> None:
    dataset_id = _dataset(client, [{"prompt": "Name a fruit.", "label": "-"}] * 2, "prompts-only")
    _reject(client, redis, {"ift": {"dataset_id": dataset_id}}, "ift.dataset_id", "prompt and response")


def test_eft_dataset_without_a_judgment_field(client: TestClient, redis: Redis) -> None:
    dataset_id = _dataset(
        client, [{"prompt": "Name a fruit.", "response": "Apple.", "label": 3}], "no-judgment"
    )
    _reject(client, redis, {"eft": {"dataset_id": dataset_id}}, "eft.dataset_id", "judgment")


def test_eft_dataset_with_a_label_that_is_not_a_score(client: TestClient, redis: Redis) -> None:
    rows = [{**row, "label": "good"} for row in _eft_dataset_rows(2)]
    dataset_id = _dataset(client, rows, "text-labels")
    _reject(client, redis, {"eft": {"dataset_id": dataset_id}}, "eft.dataset_id", "scores 0-5")


def test_eft_dataset_row_whose_judgment_disagrees_with_its_label(client: TestClient, redis: Redis) -> None:
    rows = _eft_dataset_rows(3)
    rows[2]["label"] = 5  # the judgment says 2
    dataset_id = _dataset(client, rows, "disagreeing")
    _reject(
        client,
        redis,
        {"eft": {"dataset_id": dataset_id}},
        "eft.dataset_id",
        "row 2: the judgment's score is 2",
    )
