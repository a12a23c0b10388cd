"""Cost bounds of long jobs over HTTP: every size parameter's cap, the per-job caps on projected calls
and tokens, the tenant's quota of active long jobs, and the self-reward dry run."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from app.core.state import AppState
from tests.api import test_prompt_opt as po
from tests.api.helpers import DEFAULT_QUEUE, PAIR, PAIRWISE, assert_error

SR_URL = "/v1/jobs/self-reward"
PO_URL = po.URL


def _limit(state: AppState, **settings: int) -> None:
    state.settings = state.settings.model_copy(update=settings)


def _jobs(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/jobs")
    assert response.status_code == 200, response.text
    return list(response.json()["jobs"])


def _over_cap(client: TestClient, url: str, body: dict[str, Any], field: str | None, cap: str) -> str:
    error = assert_error(client.post(url, json=body), 422, "validation_error", field)
    assert cap in error["message"], error
    assert _jobs(client) == []
    return str(error["message"])


def ift(n: int) -> list[dict[str, str]]:
    return [{"prompt": f"Name a fruit ({i}).", "response": f"Apple number {i}."} for i in range(n)]


# Self-reward: size caps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "cap", "limits"),
    [
        ({"iterations": 11}, "iterations", "JUDGE_MAX_SR_ITERATIONS=10", {}),
        (
            {"prompts_per_iteration": 20001},
            "prompts_per_iteration",
            "JUDGE_MAX_SR_PROMPTS_PER_ITERATION=20000",
            {},
        ),
        (
            {"instruct": {"max_attempts_factor": 11}},
            "instruct.max_attempts_factor",
            "JUDGE_MAX_SR_ATTEMPTS_FACTOR=10",
            {},
        ),
        ({"candidates": {"n": 32}}, "candidates.n", "JUDGE_MAX_SR_CANDIDATES=16", {}),
        ({"judge": {"samples": 16}}, "judge.samples", "JUDGE_MAX_SR_JUDGE_SAMPLES=8", {}),
        (
            {"evaluation": {"heldout_prompts": 501}},
            "evaluation.heldout_prompts",
            "JUDGE_MAX_SR_HELDOUT_PROMPTS=500",
            {},
        ),
        (
            {"instruct": {"max_tokens": 300}},
            "instruct.max_tokens",
            "JUDGE_MAX_JOB_NEW_TOKENS=256",
            {"max_job_new_tokens": 256},
        ),
        ({"candidates": {"max_tokens": 4096}}, "candidates.max_tokens", "JUDGE_MAX_JOB_NEW_TOKENS=2048", {}),
        ({"judge": {"max_tokens": 4096}}, "judge.max_tokens", "JUDGE_MAX_JOB_NEW_TOKENS=2048", {}),
        ({"evaluation": {"max_tokens": 2049}}, "evaluation.max_tokens", "JUDGE_MAX_JOB_NEW_TOKENS=2048", {}),
        ({"sft": {"epochs": 11}}, "sft.epochs", "JUDGE_MAX_SR_TRAINING_EPOCHS=10", {}),
        ({"dpo": {"epochs": 20}}, "dpo.epochs", "JUDGE_MAX_SR_TRAINING_EPOCHS=10", {}),
        ({"sft": {"max_length": 8193}}, "sft.max_length", "JUDGE_MAX_SR_TRAINING_MAX_LENGTH=8192", {}),
        ({"dpo": {"max_length": 32768}}, "dpo.max_length", "JUDGE_MAX_SR_TRAINING_MAX_LENGTH=8192", {}),
        ({"ift": {"rows": ift(4)}}, "ift.rows", "JUDGE_MAX_SR_SEED_EXAMPLES=3", {"max_sr_seed_examples": 3}),
        ({}, "ift", "JUDGE_MAX_SR_SEED_EXAMPLES=50", {"max_sr_seed_examples": 50}),
    ],
    ids=[
        "iterations",
        "prompts-per-iteration",
        "attempts-factor",
        "candidates",
        "judge-samples",
        "heldout-prompts",
        "instruct-max-tokens",
        "candidates-max-tokens",
        "judge-max-tokens",
        "evaluation-max-tokens",
        "sft-epochs",
        "dpo-epochs",
        "sft-max-length",
        "dpo-max-length",
        "inline-ift-rows",
        "shipped-ift",
    ],
)
def test_a_self_reward_size_over_its_cap_is_422_naming_the_cap(
    client: TestClient,
    state: AppState,
    redis: Redis,
    body: dict[str, Any],
    field: str,
    cap: str,
    limits: dict[str, int],
) -> None:
    _limit(state, **limits)
    message = _over_cap(client, SR_URL, body, field, cap)
    assert message.startswith(f"{field} is " if "ift" not in field else f"{field} has ")
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []
    # a dry run validates the same way
    _over_cap(client, SR_URL, {**body, "dry_run": True}, field, cap)


def test_a_capped_sft_setting_is_not_checked_when_sft_is_off(client: TestClient) -> None:
    response = client.post(SR_URL, json={"sft": {"enabled": False, "epochs": 20}})
    assert response.status_code == 202, response.text


def test_the_issues_absurd_self_reward_request_is_refused(client: TestClient) -> None:
    body = {
        "iterations": 20,
        "prompts_per_iteration": 100000,
        "candidates": {"n": 32},
        "judge": {"samples": 16},
    }
    _over_cap(client, SR_URL, body, "iterations", "JUDGE_MAX_SR_ITERATIONS")


def test_the_documented_defaults_are_within_every_cap(client: TestClient) -> None:
    assert client.post(SR_URL, json={"dry_run": True}).json()["projection"]["fits_budget"] is True
    assert client.post(SR_URL, json={}).status_code == 202
    assert client.post(PO_URL, json=po.body(hyperparameters=None)).status_code == 202


# Self-reward: per-job caps on the projection ------------------------------------------------------

EVERY_SIZE_AT_ITS_CAP: dict[str, Any] = {
    "iterations": 10,
    "prompts_per_iteration": 20000,
    "candidates": {"n": 16},
    "judge": {"samples": 8},
}


def test_a_self_reward_job_projecting_more_calls_than_the_cap_is_refused(client: TestClient) -> None:
    dry = client.post(SR_URL, json={**EVERY_SIZE_AT_ITS_CAP, "dry_run": True})
    assert dry.status_code == 200, dry.text
    projection = dry.json()["projection"]
    assert projection["calls"] > 5_000_000
    assert projection["fits_budget"] is False
    calls_cap = projection["caps"][0]
    assert calls_cap == {
        "setting": "JUDGE_MAX_JOB_CALLS",
        "limit": 5_000_000,
        "projected": projection["calls"],
        "ok": False,
    }
    message = _over_cap(client, SR_URL, EVERY_SIZE_AT_ITS_CAP, None, "JUDGE_MAX_JOB_CALLS=5000000")
    assert f"projects up to {projection['calls']} model calls" in message


def test_a_self_reward_job_projecting_more_tokens_than_the_cap_is_refused(
    client: TestClient, state: AppState
) -> None:
    _limit(state, max_job_tokens=1000)
    projection = client.post(SR_URL, json={"dry_run": True}).json()["projection"]
    assert [c["ok"] for c in projection["caps"]] == [True, False]
    assert projection["fits_budget"] is False
    _over_cap(client, SR_URL, {}, None, "JUDGE_MAX_JOB_TOKENS=1000")


# Self-reward: dry runs ---------------------------------------------------------------------------


def test_a_self_reward_dry_run_projects_every_stage_and_records_nothing(
    client: TestClient, redis: Redis
) -> None:
    response = client.post(SR_URL, json={"dry_run": True, "evaluation": {"heldout_prompts": 4}})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["dry_run"] is True
    assert out["ift_size"] > 0 and out["eft_size"] > 0 and out["heldout_size"] > 0
    p = out["projection"]
    stages = ("prompts", "candidates", "judgments", "evaluation")
    assert p["prompts"]["calls"] == 2 * 16 * 4  # 2 iterations x 16 prompts x attempt factor 4
    assert p["candidates"]["calls"] == 2 * 16 * 4
    assert p["judgments"]["calls"] == 2 * 16 * 4 * 3
    # after SFT and each DPO iteration: 2 x 4 answers, every held-out example graded, 4 x 2 win-rate calls
    assert p["evaluation"]["calls"] == 3 * (8 + out["heldout_size"] + 8)
    assert p["calls"] == sum(p[s]["calls"] for s in stages)
    assert p["tokens"] == sum(p[s]["tokens"] for s in stages) > p["calls"]
    assert [it["iteration"] for it in p["per_iteration"]] == [0, 1, 2]
    assert p["per_iteration"][0]["calls"] == p["evaluation"]["calls"] // 3
    assert p["training_steps"] == sum(it["training_steps"] for it in p["per_iteration"])
    assert p["per_iteration"][1]["training_steps"] == 1  # 16 pairs at most, DPO batch size 16, 1 epoch
    assert p["fits_budget"] is True and all(c["ok"] for c in p["caps"])
    assert _jobs(client) == []
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


def test_a_self_reward_dry_run_without_sft_projects_the_dpo_iterations_only(client: TestClient) -> None:
    with_sft = client.post(SR_URL, json={"dry_run": True}).json()["projection"]
    without = client.post(SR_URL, json={"dry_run": True, "sft": {"enabled": False}}).json()["projection"]
    assert [it["iteration"] for it in without["per_iteration"]] == [1, 2]
    assert without["training_steps"] < with_sft["training_steps"]
    assert without["calls"] < with_sft["calls"]


def test_a_self_reward_dry_run_still_validates(client: TestClient) -> None:
    error = assert_error(
        client.post(SR_URL, json={"dry_run": True, "base_model": "nope"}),
        422,
        "validation_error",
        "base_model",
    )
    assert "nope" in error["message"]


def test_an_accepted_self_reward_job_does_not_record_dry_run(client: TestClient) -> None:
    response = client.post(SR_URL, json={"dry_run": False})
    assert response.status_code == 202, response.text
    assert "dry_run" not in response.json()["params"]


# Prompt optimization: size caps ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "cap", "limits"),
    [
        ({"hyperparameters": {"rounds": 31}}, "hyperparameters.rounds", "JUDGE_MAX_PO_ROUNDS=30", {}),
        (
            {"hyperparameters": {"beam_size": 17}},
            "hyperparameters.beam_size",
            "JUDGE_MAX_PO_BEAM_SIZE=16",
            {},
        ),
        (
            {"hyperparameters": {"minibatch_size": 1001}},
            "hyperparameters.minibatch_size",
            "JUDGE_MAX_PO_MINIBATCH_SIZE=1000",
            {},
        ),
        (
            {"hyperparameters": {"n_gradients": 17}},
            "hyperparameters.n_gradients",
            "JUDGE_MAX_PO_GRADIENTS=16",
            {},
        ),
        (
            {"hyperparameters": {"errors_per_gradient": 33}},
            "hyperparameters.errors_per_gradient",
            "JUDGE_MAX_PO_ERRORS_PER_GRADIENT=32",
            {},
        ),
        (
            {"hyperparameters": {"gradients_per_error": 5}},
            "hyperparameters.gradients_per_error",
            "JUDGE_MAX_PO_GRADIENTS_PER_ERROR=4",
            {},
        ),
        (
            {"hyperparameters": {"steps_per_gradient": 5}},
            "hyperparameters.steps_per_gradient",
            "JUDGE_MAX_PO_STEPS_PER_GRADIENT=4",
            {},
        ),
        (
            {"hyperparameters": {"mc_samples": 9}},
            "hyperparameters.mc_samples",
            "JUDGE_MAX_PO_PARAPHRASES=8",
            {},
        ),
        (
            {"hyperparameters": {"max_expansion": 33}},
            "hyperparameters.max_expansion",
            "JUDGE_MAX_PO_EXPANSION=32",
            {},
        ),
        (
            {"hyperparameters": {"selector": {"eval_rounds": 201}}},
            "hyperparameters.selector.eval_rounds",
            "JUDGE_MAX_PO_BANDIT_ROUNDS=200",
            {},
        ),
        (
            {"hyperparameters": {"selector": {"prompts_per_round": 33}}},
            "hyperparameters.selector.prompts_per_round",
            "JUDGE_MAX_PO_PROMPTS_PER_BANDIT_ROUND=32",
            {},
        ),
        (
            {"hyperparameters": {"selector": {"samples_per_eval": 1001}}},
            "hyperparameters.selector.samples_per_eval",
            "JUDGE_MAX_PO_SAMPLES_PER_EVAL=1000",
            {},
        ),
        (
            {"task_decoding": {"max_tokens": 64}},
            "task_decoding.max_tokens",
            "JUDGE_MAX_JOB_NEW_TOKENS=32",
            {"max_job_new_tokens": 32},
        ),
        (
            {"optimizer_decoding": {"max_tokens": 4096}},
            "optimizer_decoding.max_tokens",
            "JUDGE_MAX_JOB_NEW_TOKENS=2048",
            {},
        ),
        ({}, "data.dev", "JUDGE_MAX_PO_EVAL_ROWS=3", {"max_po_eval_rows": 3}),
        ({}, "data.test", "JUDGE_MAX_PO_EVAL_ROWS=5", {"max_po_eval_rows": 5}),
    ],
    ids=[
        "rounds",
        "beam-size",
        "minibatch-size",
        "gradients",
        "errors-per-gradient",
        "gradients-per-error",
        "steps-per-gradient",
        "paraphrases",
        "expansion",
        "bandit-rounds",
        "prompts-per-bandit-round",
        "samples-per-eval",
        "task-max-tokens",
        "optimizer-max-tokens",
        "dev-rows",
        "test-rows",
    ],
)
def test_a_prompt_optimization_size_over_its_cap_is_422_naming_the_cap(
    client: TestClient,
    state: AppState,
    changes: dict[str, Any],
    field: str,
    cap: str,
    limits: dict[str, int],
) -> None:
    _limit(state, **limits)
    message = _over_cap(client, PO_URL, po.body(**changes), field, cap)
    assert message.startswith(f"{field} is " if "data" not in field else f"{field} has ")
    _over_cap(client, PO_URL, po.body(dry_run=True, **changes), field, cap)


# Prompt optimization: per-job caps on the projection ----------------------------------------------


def _po_projection(client: TestClient, request: dict[str, Any]) -> dict[str, Any]:
    response = client.post(PO_URL, json={**request, "dry_run": True})
    assert response.status_code == 200, response.text
    return dict(response.json()["projection"])


def test_a_projection_over_the_calls_cap_does_not_fit_and_is_refused(
    client: TestClient, state: AppState
) -> None:
    projected = _po_projection(client, po.body())["calls"]
    _limit(state, max_job_calls=projected - 1)
    p = _po_projection(client, po.body())
    assert p["fits_budget"] is False and p["within_caps"] is False
    assert p["caps"][0] == {
        "setting": "JUDGE_MAX_JOB_CALLS",
        "limit": projected - 1,
        "projected": projected,
        "ok": False,
    }
    message = _over_cap(client, PO_URL, po.body(), "budget.max_calls", f"JUDGE_MAX_JOB_CALLS={projected - 1}")
    assert f"projects up to {projected} model calls" in message
    # A budget at the cap bounds the run (the budget stops the search): accepted, though the whole
    # projection does not fit it.
    bounded = po.body(budget={"max_calls": projected - 1})
    p = _po_projection(client, bounded)
    assert p["within_caps"] is True and p["fits_budget"] is False
    assert p["caps"][0]["projected"] == projected - 1
    assert client.post(PO_URL, json=bounded).status_code == 202


def test_a_budget_above_the_cap_does_not_lift_it(client: TestClient, state: AppState) -> None:
    projected = _po_projection(client, po.body())["calls"]
    _limit(state, max_job_calls=projected - 1)
    request = po.body(budget={"max_calls": 10**9})
    assert _po_projection(client, request)["fits_budget"] is False
    _over_cap(client, PO_URL, request, "budget.max_calls", "JUDGE_MAX_JOB_CALLS")


def test_a_projection_over_the_tokens_cap_is_refused_naming_the_budget_field(
    client: TestClient, state: AppState
) -> None:
    _limit(state, max_job_tokens=100)
    p = _po_projection(client, po.body())
    assert [c["ok"] for c in p["caps"]] == [True, False]
    assert p["fits_budget"] is False
    _over_cap(client, PO_URL, po.body(), "budget.max_tokens", "JUDGE_MAX_JOB_TOKENS=100")


# The tenant's quota of active long jobs ----------------------------------------------------------


def test_a_tenant_at_its_quota_of_long_jobs_gets_429(client: TestClient, state: AppState) -> None:
    _limit(state, max_active_long_jobs_per_tenant=2)
    first = client.post(SR_URL, json={})
    assert first.status_code == 202, first.text
    assert client.post(PO_URL, json=po.body()).status_code == 202
    for url, request in ((SR_URL, {}), (PO_URL, po.body())):
        response = client.post(url, json=request)
        error = assert_error(response, 429, "too_many_jobs", None)
        assert "JUDGE_MAX_ACTIVE_LONG_JOBS_PER_TENANT=2" in error["message"], error
        assert "2 queued or running long jobs" in error["message"]
        assert response.headers["Retry-After"]
    # judging jobs are not long jobs, and a dry run records nothing: both still go through
    assert client.post(PAIRWISE, json={"items": [PAIR]}).status_code == 202
    assert client.post(SR_URL, json={"dry_run": True}).status_code == 200
    assert client.post(PO_URL, json=po.body(dry_run=True)).status_code == 200
    # a job that ends frees its place
    assert client.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 200
    assert client.post(SR_URL, json={}).status_code == 202


def test_another_tenants_long_jobs_do_not_count(client: TestClient, state: AppState) -> None:
    from app.auth.keys import SCOPES
    from app.auth.service import create_key

    _limit(state, max_active_long_jobs_per_tenant=1)
    assert client.post(SR_URL, json={}).status_code == 202
    with state.db.unit_of_work() as session:
        _, token = create_key(session, "other", list(SCOPES), "tests")
    response = client.post(SR_URL, json={}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202, response.text
