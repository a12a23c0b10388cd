"""Prompt-optimization jobs over HTTP: submission (inline rows or datasets), validation, dry runs, results."""

from __future__ import annotations

import copy
import json
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
from app.prompt_opt import service as po_service
from app.prompt_opt.schemas import PromptOptimizationRequest
from tests.api.helpers import DEFAULT_MODEL, DEFAULT_QUEUE, assert_error

URL = "/v1/jobs/prompt-optimization"
PROMPT = (
    "# Task\nDecide whether the statement is true.\n\n"
    "# Output format\nAnswer with one word: Yes or No.\n\nStatement: {text}\nAnswer:"
)
JUDGE_ROW = {"question": "2+2?", "answer_a": "4", "answer_b": "5"}


def rows(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"text": f"statement {prefix}{i}", "label": "Yes" if i % 2 else "No"} for i in range(n)]


def body(**changes: Any) -> dict[str, Any]:
    """A valid classification request with ``changes`` merged in (nested dicts merge; None removes)."""
    request: dict[str, Any] = {
        "task_description": "Fact-checking of short statements",
        "labels": ["No", "Yes"],
        "initial_prompt": PROMPT,
        "data": {
            "train": {"rows": rows("t", 8)},
            "dev": {"rows": rows("d", 4)},
            "test": {"rows": rows("x", 6)},
        },
        "hyperparameters": {"rounds": 2, "beam_size": 2, "minibatch_size": 4},
    }
    return _merge(request, changes)


def judge_body(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "task_type": "judge-agreement",
        "task_description": "Agree with human preferences between two answers",
        "judge_template": "pairwise",
        "data": {"train": {"rows": [{**JUDGE_ROW, "label": v} for v in ("A", "B", "tie")]}},
        "hyperparameters": {"rounds": 1},
    }
    return _merge(request, changes)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _jobs(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/jobs")
    assert response.status_code == 200, response.text
    return list(response.json()["jobs"])


def _dataset(client: TestClient, rows: list[dict[str, Any]], name: str) -> str:
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    response = client.post(
        "/v1/datasets",
        content=content,
        params={"name": name},
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _liar(n: int, prefix: str) -> list[dict[str, Any]]:
    """LIAR-style rows: integer labels 0 (false) / 1 (true)."""
    return [{"statement": f"claim {prefix}{i}", "label": i % 2} for i in range(n)]


# Accepted submissions ----------------------------------------------------------------------------


def test_inline_submission_queues_a_job_with_empty_results(client: TestClient, redis: Redis) -> None:
    response = client.post(URL, json=body())
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "prompt_opt"
    assert job["status"] == "queued"
    assert job["model"] == DEFAULT_MODEL
    assert job["progress"] == {"done": 0, "total": 2, "failed": 0}  # one step per round
    assert "dry_run" not in job["params"]
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == [f"{job['id']}_0"]

    fetched = client.get(f"/v1/jobs/{job['id']}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == job

    response = client.get(f"/v1/jobs/{job['id']}/results")
    assert response.status_code == 200, response.text
    results = response.json()
    assert results["job_id"] == job["id"] and results["status"] == "queued"
    assert results["initial_prompt"] == PROMPT
    assert results["metric"] == "accuracy"
    assert results["rounds"] == [] and results["candidates"] == []
    assert results["best_prompt"] is None and results["stop_reason"] is None
    assert results["evaluation"] == {} and results["usage"] == {}


def test_dataset_submission_slices_one_dataset_into_disjoint_dev_and_test(
    client: TestClient, state: AppState
) -> None:
    train_id = _dataset(client, _liar(10, "t"), "liar-train")
    pool_id = _dataset(client, _liar(20, "p"), "liar-pool")
    request = body(
        initial_prompt=PROMPT.replace("{text}", "{statement}"),
        label_values=["0", "1"],
        data={
            "train": {"dataset_id": train_id, "rows": None},
            "dev": {"dataset_id": pool_id, "rows": None, "shuffle": True, "start": 0, "count": 7},
            "test": {"dataset_id": pool_id, "rows": None, "shuffle": True, "start": 7},
        },
        seed=5,
    )
    dry = client.post(URL, json={**request, "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert (dry.json()["train_size"], dry.json()["dev_size"], dry.json()["test_size"]) == (10, 7, 13)

    response = client.post(URL, json=request)
    assert response.status_code == 202, response.text
    params = client.get(f"/v1/jobs/{response.json()['id']}").json()["params"]
    # What the worker will load from the recorded request:
    with state.db.unit_of_work() as session:
        loaded = po_service.load_splits(session, PromptOptimizationRequest.model_validate(params), "default")
    dev, test = loaded.splits.dev, loaded.splits.test
    dev_texts = {e.inputs["statement"] for e in dev}
    test_texts = {e.inputs["statement"] for e in test}
    assert not dev_texts & test_texts
    assert dev_texts | test_texts == {f"claim p{i}" for i in range(20)}
    assert [e.inputs["statement"] for e in dev] != [f"claim p{i}" for i in range(7)]  # shuffled
    for example in [*loaded.splits.train, *dev, *test]:
        index = int(example.inputs["statement"][len("claim p") :])
        assert example.label == ("Yes" if index % 2 else "No")


@pytest.mark.parametrize("template", ["pairwise", "pairwise-cot"])
def test_judge_agreement_from_a_builtin_template(client: TestClient, template: str) -> None:
    response = client.post(URL, json=judge_body(judge_template=template))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    results = client.get(f"/v1/jobs/{job_id}/results").json()
    prompt = results["initial_prompt"]
    assert prompt.startswith("# Task\nYou are an impartial judge")
    assert "# Output format\n" in prompt and "{answer_b}" in prompt
    assert results["best_template"] is None


# Rejected submissions ----------------------------------------------------------------------------


def _reject(client: TestClient, request: dict[str, Any], field: str | None, *fragments: str) -> str:
    error = assert_error(client.post(URL, json=request), 422, "validation_error", field)
    for fragment in fragments:
        assert fragment in error["message"], error
    assert _jobs(client) == []
    return str(error["message"])


def test_unknown_dataset_is_422(client: TestClient, redis: Redis) -> None:
    missing = uuid.uuid4()
    request = body(data={"dev": {"dataset_id": str(missing), "rows": None}})
    _reject(client, request, "data.dev.dataset_id", f"unknown dataset {missing}")
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


def test_another_tenants_dataset_is_unknown(client: TestClient, state: AppState) -> None:
    upload = Upload(DatasetIn.model_validate({"name": "theirs", "rows": rows("o", 4)}))
    with state.db.unit_of_work() as session:
        theirs = create_dataset(session, "other", upload, 10).id
    request = body(data={"train": {"dataset_id": str(theirs), "rows": None}})
    _reject(client, request, "data.train.dataset_id", f"unknown dataset {theirs}")


def test_label_not_among_label_values_is_422(client: TestClient) -> None:
    train_id = _dataset(client, [*_liar(4, "t"), {"statement": "half true", "label": 2}], "liar")
    request = body(
        initial_prompt=PROMPT.replace("{text}", "{statement}"),
        label_values=["0", "1"],
        data={"train": {"dataset_id": train_id, "rows": None}, "dev": None, "test": None},
    )
    _reject(client, request, "data.train", "label '2'", "'0', '1'")


@pytest.mark.parametrize(
    ("changes", "field", "fragments"),
    [
        (
            {"initial_prompt": "Is {statement} true? Yes or No."},
            "initial_prompt",
            ["statement", "fields: ['text']"],
        ),
        ({"initial_prompt": "Is {text.__class__} true?"}, "initial_prompt", ["no attribute or index access"]),
        ({"initial_prompt": "Is it true? Yes or No."}, "initial_prompt", ["no placeholder"]),
        ({"data": {"dev": {"rows": [{"text": "x", "label": "Maybe"}]}}}, "data.dev", ["label 'Maybe'"]),
        ({"labels": ["Yes"]}, "labels", ["at least two labels"]),
        ({"labels": ["Yes", "Yes"]}, "labels", ["distinct"]),
        ({"label_values": ["0"]}, "label_values", ["one value per label"]),
        ({"label_values": ["0", "0"]}, "label_values", ["distinct"]),
        ({"metric": {"name": "f1"}}, "metric.positive_label", ["positive_label"]),
        ({"metric": {"name": "f1", "positive_label": "Maybe"}}, "metric.positive_label", ["'Maybe'"]),
        ({"budget": {"max_calls": 20}}, "budget.max_calls", ["the 20 calls held back"]),
        ({"data": {"dev": {"start": 4}}}, "data.dev", ["dev split is empty"]),
        ({"data": {"train": {"start": 8}}}, "data.train", ["train split is empty"]),
        ({"task_model": "nope"}, "task_model", ["unknown model 'nope'", DEFAULT_MODEL]),
        ({"optimizer_model": "nope"}, "optimizer_model", ["unknown model 'nope'"]),
        ({"temperature": 0.5}, "temperature", ["Extra inputs are not permitted"]),
        ({"hyperparameters": {"roundz": 3}}, "hyperparameters.roundz", ["Extra inputs are not permitted"]),
        ({"data": {"train": {"rows": None}}}, "data.train", ["exactly one of dataset_id or rows"]),
        ({"judge_template": "pairwise"}, "judge_template", ["judge-agreement"]),
    ],
    ids=[
        "placeholder-not-a-field",
        "attribute-access",
        "no-placeholder",
        "label-not-a-label-value",
        "one-label",
        "duplicate-labels",
        "label-values-count",
        "duplicate-label-values",
        "f1-without-positive-label",
        "positive-label-not-a-label",
        "budget-not-above-final-eval",
        "empty-dev-slice",
        "empty-train-slice",
        "unknown-task-model",
        "unknown-optimizer-model",
        "extra-field",
        "extra-nested-field",
        "split-without-source",
        "classification-with-judge-template",
    ],
)
def test_invalid_classification_request_is_422(
    client: TestClient, changes: dict[str, Any], field: str, fragments: list[str]
) -> None:
    _reject(client, body(**changes), field, *fragments)


def test_budget_one_call_above_the_reserve_is_accepted(client: TestClient) -> None:
    response = client.post(URL, json=body(budget={"max_calls": 2 * (4 + 6) + 1}))
    assert response.status_code == 202, response.text


OUTPUT_FORMAT = "# Output format\nQuestion: {question}\nA: {answer_a}\nB: {answer_b}\nVerdict (A, B or tie):"


@pytest.mark.parametrize(
    ("changes", "field", "fragments"),
    [
        ({"task_decoding": {"mode": "logprobs"}}, "task_decoding.mode", ["logprobs is for classification"]),
        ({"judge_template": "nope"}, "judge_template", ["unknown template 'nope'"]),
        ({"judge_template": "single"}, "judge_template", ["pairwise"]),
        ({"judge_template": "pairwise-ref"}, "judge_template", ["without a reference"]),
        (
            {"initial_prompt": "Judge. {question} {answer_a} {answer_b}"},
            "initial_prompt",
            ["'# Output format'"],
        ),
        (
            {"initial_prompt": "# Task\nJudge.\n\n# Output format\n{question}\n{answer_a}\nVerdict:"},
            "initial_prompt",
            ["{answer_b}"],
        ),
        (
            {"initial_prompt": "# Task\nJudge {question}: {answer_a} or {answer_b}?\n\n# Output format\nOK?"},
            "initial_prompt",
            ["'# Output format'"],
        ),
        (
            {"initial_prompt": f"# Task\nJudge {{question}} fairly.\n\n{OUTPUT_FORMAT}"},
            "initial_prompt",
            ["['question'] appear outside the '# Output format' section"],
        ),
        ({"initial_prompt": f"# Task\nJudge.\n\n{OUTPUT_FORMAT}"}, "judge_template", ["exactly one"]),
        ({"judge_template": None}, "initial_prompt", ["exactly one"]),
    ],
    ids=[
        "logprobs",
        "unknown-template",
        "single-template",
        "reference-template",
        "no-output-format",
        "missing-placeholder",
        "format-without-placeholders",
        "placeholder-in-task-section",
        "template-and-prompt",
        "neither-template-nor-prompt",
    ],
)
def test_invalid_judge_agreement_request_is_422(
    client: TestClient, changes: dict[str, Any], field: str, fragments: list[str]
) -> None:
    request = judge_body(**changes)
    if "initial_prompt" in changes and field != "judge_template":
        request.pop("judge_template")
    _reject(client, request, field, *fragments)


def test_judge_agreement_with_a_sectioned_prompt_is_accepted(client: TestClient) -> None:
    request = judge_body(judge_template=None, initial_prompt=f"# Task\nJudge the answers.\n\n{OUTPUT_FORMAT}")
    response = client.post(URL, json=request)
    assert response.status_code == 202, response.text


# Dry runs ----------------------------------------------------------------------------------------


def _projection(client: TestClient, request: dict[str, Any]) -> dict[str, Any]:
    response = client.post(URL, json={**request, "dry_run": True})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["dry_run"] is True
    return dict(out["projection"])


def test_dry_run_projects_consistent_numbers_and_records_nothing(client: TestClient, redis: Redis) -> None:
    response = client.post(URL, json=body(dry_run=True))
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["train_size"], out["dev_size"], out["test_size"]) == (8, 4, 6)
    p = out["projection"]
    assert p["calls"] == p["task_calls"] + p["optimizer_calls"]
    assert p["final_eval_calls"] == 2 * (4 + 6)
    assert len(p["per_round"]) == 2
    # The initial prompt on dev, each round, then the final evaluation:
    assert p["task_calls"] == 4 + sum(r["task_calls"] for r in p["per_round"]) + p["final_eval_calls"]
    assert p["optimizer_calls"] == sum(r["optimizer_calls"] for r in p["per_round"]) > 0
    assert p["tokens"] > p["calls"]
    assert p["fits_budget"] is True
    assert _jobs(client) == []
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


def test_more_rounds_project_more_calls(client: TestClient) -> None:
    one = _projection(client, body(hyperparameters={"rounds": 1}))
    three = _projection(client, body(hyperparameters={"rounds": 3}))
    assert three["task_calls"] > one["task_calls"]
    assert three["optimizer_calls"] > one["optimizer_calls"]
    assert three["tokens"] > one["tokens"]


def test_brute_force_on_a_big_dev_set_projects_more_task_calls_than_ucb(client: TestClient) -> None:
    request = body(
        data={"train": {"rows": rows("t", 200)}, "dev": {"rows": rows("d", 200)}},
        hyperparameters={"minibatch_size": 16},
    )
    ucb = _projection(client, request)
    brute = _projection(client, _merge(request, {"hyperparameters": {"selector": {"method": "brute-force"}}}))
    assert brute["task_calls"] > ucb["task_calls"]
    assert brute["optimizer_calls"] == ucb["optimizer_calls"]


def test_dry_run_reports_a_budget_it_does_not_fit(client: TestClient) -> None:
    assert _projection(client, body(budget={"max_calls": 21}))["fits_budget"] is False
    assert _projection(client, body(budget={"max_tokens": 1}))["fits_budget"] is False
    assert _projection(client, body(budget={"max_calls": 10**6, "max_tokens": 10**9}))["fits_budget"] is True
    assert _jobs(client) == []


def test_dry_run_still_validates(client: TestClient) -> None:
    _reject(client, body(dry_run=True, task_model="nope"), "task_model", "unknown model 'nope'")
