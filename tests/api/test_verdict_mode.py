"""`verdict_mode: logprobs` requests: what is refused, what is recorded, and how results read back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from app.core.state import AppState
from app.judging import repository as judging_repo
from app.judging.domain import Scale
from app.judging.probabilities import aggregate_distributions, order_outcome_from_distribution
from tests.api.helpers import (
    DEFAULT_QUEUE,
    MULTI_PAIR,
    PAIR,
    PAIRWISE,
    SINGLE,
    SINGLE_URL,
    assert_error,
    endpoint,
)

PAIRWISE_USER = "Question: {question}\nA: {answer_a}\nB: {answer_b}\nReply [[A]], [[B]] or [[C]]."
LOGPROBS = {"verdict_mode": "logprobs"}

# (id, endpoint, body, field, fragment of the message)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("unknown mode", PAIRWISE, {"items": [PAIR], "verdict_mode": "sample"}, "verdict_mode", "'logprobs'"),
    (
        "with cot",
        PAIRWISE,
        {"items": [PAIR], "cot": True, **LOGPROBS},
        "verdict_mode",
        "cannot be used with cot",
    ),
    ("with cot single", SINGLE_URL, {"items": [SINGLE], "cot": True, **LOGPROBS}, "verdict_mode", "with cot"),
    (
        "template without a response prefix",
        PAIRWISE,
        {"items": [PAIR], "template": "pairwise-cot", **LOGPROBS},
        "template",
        "template 'pairwise-cot' has no response_prefix",
    ),
    (
        "fractional scale end",
        SINGLE_URL,
        {"items": [SINGLE], "scale": {"min": 1, "max": 7.5}, **LOGPROBS},
        "scale",
        "whole-number ends, got 1..7.5",
    ),
    (
        "fractional scale start",
        SINGLE_URL,
        {"items": [SINGLE], "scale": {"min": 0.5, "max": 5}, **LOGPROBS},
        "scale",
        "whole-number ends",
    ),
    (
        "101 scores",
        SINGLE_URL,
        {"items": [SINGLE], "scale": {"min": 0, "max": 100}, **LOGPROBS},
        "scale",
        "at most 100 scores, got 101",
    ),
    (
        "widest scale",
        SINGLE_URL,
        {"items": [SINGLE], "scale": {"min": -1000, "max": 1000}, **LOGPROBS},
        "scale",
        "got 2001",
    ),
]


@pytest.mark.parametrize(
    ("url", "body", "field", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_unusable_logprobs_request_is_422_naming_the_field(
    client: TestClient, redis: Redis, url: str, body: dict[str, Any], field: str, fragment: str
) -> None:
    error = assert_error(client.post(url, json=body), 422, "validation_error", field)
    assert fragment in error["message"]
    assert client.get("/v1/jobs").json()["jobs"] == []
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


def test_registered_template_without_a_prefix_is_refused(client: TestClient, redis: Redis) -> None:
    body = {"name": "bare-judge", "mode": "pairwise", "user": PAIRWISE_USER}
    assert client.post("/v1/templates", json=body).status_code == 201
    response = client.post(PAIRWISE, json={"items": [PAIR], "template": "bare-judge", **LOGPROBS})
    error = assert_error(response, 422, "validation_error", "template")
    # The message says why: the label must be the judge's next text.
    assert "next text after the prefix" in error["message"]
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []
    # The same template still serves generated verdicts.
    assert client.post(PAIRWISE, json={"items": [PAIR], "template": "bare-judge"}).status_code == 202


def test_registered_template_with_a_prefix_is_accepted(client: TestClient) -> None:
    body = {"name": "prefixed-judge", "mode": "pairwise", "user": PAIRWISE_USER, "response_prefix": "[["}
    assert client.post("/v1/templates", json=body).status_code == 201
    response = client.post(PAIRWISE, json={"items": [PAIR], "template": "prefixed-judge", **LOGPROBS})
    assert response.status_code == 202, response.text
    assert response.json()["params"]["verdict_mode"] == "logprobs"


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("pairwise", {}),
        ("pairwise", {"swap": "none"}),
        ("pairwise", {"reference": {"auto": True}}),
        ("single", {}),
        ("single", {"scale": {"min": 1, "max": 100}}),
        ("single", {"scale": {"min": -2.0, "max": 2.0}}),
    ],
)
def test_params_record_logprobs(client: TestClient, redis: Redis, mode: str, options: dict[str, Any]) -> None:
    item = PAIR if mode == "pairwise" else SINGLE
    response = client.post(endpoint(mode), json={"items": [item], **LOGPROBS, **options})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["params"]["verdict_mode"] == "logprobs"
    assert job["params"]["cot"] is False
    assert client.get(f"/v1/jobs/{job['id']}").json()["params"]["verdict_mode"] == "logprobs"
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids != []


def test_multi_turn_items_use_the_prefixed_builtins(client: TestClient) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR, MULTI_PAIR], **LOGPROBS})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "options", [{}, {"verdict_mode": "generate"}, {"verdict_mode": "generate", "cot": True}]
)
def test_generate_is_the_default_and_recorded_as_before(client: TestClient, options: dict[str, Any]) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR], **options})
    assert response.status_code == 202, response.text
    # A job without the key (as every job recorded before verdict modes) generates its verdicts.
    assert "verdict_mode" not in response.json()["params"]


def _save(state: AppState, job_id: str, outcomes: list[Any], hashes: dict[str, str]) -> None:
    with state.db.unit_of_work() as session:
        rows = judging_repo.pending_items(session, uuid.UUID(job_id))
        for row, outcome in zip(rows, outcomes, strict=True):
            judging_repo.save_outcome(session, row, outcome, hashes)


def test_pairwise_results_carry_the_combined_and_per_order_distributions(
    client: TestClient, state: AppState
) -> None:
    job_id = client.post(PAIRWISE, json={"items": [PAIR], **LOGPROBS}).json()["id"]
    ab = order_outcome_from_distribution(
        "pairwise", "AB", {"A": 0.2, "B": 0.7, "C": 0.1}, 0.9, Scale(), tokens_in=50, latency_ms=3.0
    )
    ba = order_outcome_from_distribution("pairwise", "BA", {"A": 0.6, "B": 0.3, "C": 0.1}, 0.8, Scale())
    _save(
        state,
        job_id,
        [aggregate_distributions("pairwise", "conservative", [ab, ba])],
        {"AB": "h1", "BA": "h2"},
    )

    (result,) = client.get(f"/v1/jobs/{job_id}/results").json()["results"]
    assert (result["status"], result["verdict"], result["consistent"]) == ("ok", "B", True)
    assert result["probabilities"] == pytest.approx({"A": 0.25, "B": 0.65, "tie": 0.1})
    assert (result["score"], result["expected_score"]) == (None, None)
    first, second = result["orders"]
    assert (first["order"], first["verdict"], first["raw"]) == (
        "AB",
        "B",
        "P(A)=0.20 P(B)=0.70 P(C)=0.10 mass=0.9",
    )
    assert first["probabilities"] == pytest.approx({"A": 0.2, "B": 0.7, "tie": 0.1})
    assert (first["tokens_in"], first["tokens_out"], first["latency_ms"]) == (50, 0, 3.0)
    # BA is shown in the caller's labels: the judge's A was answer_b.
    assert (second["order"], second["verdict"]) == ("BA", "B")
    assert second["probabilities"] == pytest.approx({"A": 0.3, "B": 0.6, "tie": 0.1})
    assert second["raw"] == "P(A)=0.60 P(B)=0.30 P(C)=0.10 mass=0.8"


def test_single_results_carry_the_expected_and_the_most_likely_score(
    client: TestClient, state: AppState
) -> None:
    scale = Scale(1, 5)
    job_id = client.post(
        SINGLE_URL, json={"items": [SINGLE], "scale": {"min": 1, "max": 5}, **LOGPROBS}
    ).json()["id"]
    probs = {"1": 0.0, "2": 0.1, "3": 0.2, "4": 0.4, "5": 0.3}
    order = order_outcome_from_distribution("single", "single", probs, 1.0, scale)
    _save(state, job_id, [aggregate_distributions("single", "none", [order])], {"single": "h"})

    (result,) = client.get(f"/v1/jobs/{job_id}/results").json()["results"]
    assert (result["status"], result["score"], result["verdict"]) == ("ok", 4.0, None)
    assert result["expected_score"] == pytest.approx(3.9)
    assert result["probabilities"] == pytest.approx(probs)
    (only,) = result["orders"]
    assert (only["order"], only["score"]) == ("single", 4.0)
    assert only["probabilities"] == pytest.approx(probs)


def test_failed_logprobs_item_keeps_the_raw_rendering(client: TestClient, state: AppState) -> None:
    job_id = client.post(PAIRWISE, json={"items": [PAIR], "swap": "none", **LOGPROBS}).json()["id"]
    uniform = {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3}
    order = order_outcome_from_distribution("pairwise", "AB", uniform, 0.0, Scale())
    _save(state, job_id, [aggregate_distributions("pairwise", "none", [order])], {"AB": "h"})

    (result,) = client.get(f"/v1/jobs/{job_id}/results").json()["results"]
    assert (result["status"], result["verdict"], result["probabilities"]) == ("error", None, None)
    assert "no probability on any verdict label" in result["error"]
    assert result["orders"][0]["raw"] == "P(A)=0.33 P(B)=0.33 P(C)=0.33 mass=0"
    assert result["orders"][0]["probabilities"] is None
