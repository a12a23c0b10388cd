"""Fuzz the published contract: schemathesis generates requests from the committed ``openapi.yaml`` and
sends them to the real app on the real Postgres (rolled back after each operation) and Redis.

Every operation is fuzzed with valid and invalid inputs (its examples, the coverage phase's boundary
values, then random data); every response must be free of 5xx, with a documented status code and content
type, and a body and headers that match the document. Objects of the fuzzing tenant are seeded first, so
that id routes also reach real objects and submissions also get through validation. No worker runs:
the jobs the fuzz creates stay queued.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from schemathesis.core.result import Ok

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.config import Settings
from app.core.state import AppState
from app.datasets.upload import JSONL_TYPES
from app.jobs.queue import JobQueue
from app.main import create_app
from app.models import repository as models_repo
from tests.conftest import TEST_REDIS_URL, RollbackDatabase
from tests.workers.conftest import first_position_judge, install_scripted_worker
from workers import context as worker_context
from workers.tasks import run_job

if TYPE_CHECKING:
    from httpx2 import Response  # what TestClient answers with

    from app.engine.base import Conversation

ROOT = Path(__file__).resolve().parents[2]
TENANT = "fuzz"
# Requests the whole run must send at least (counted, and checked by the last test of this module).
MIN_REQUESTS = 1000

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",  # valid and invalid inputs
            "max-examples": 60,
            # The same requests on every run, so CI is stable; no example database between runs.
            "deterministic": True,
            "database": "none",
        },
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {"stateful": {"enabled": False}},
        # A safety net: no request may hang the run (the app answers in milliseconds).
        "request-timeout": 10,
    }
)
schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml", config=CONFIG)
# JSONL uploads are documented as a string body: sent as its UTF-8 text.
schemathesis.serializer.alias(list(JSONL_TYPES), "text/plain")

SENT: Counter[str] = Counter()


@dataclass
class Seeded:
    """What the current operation's test seeded: values of path parameters that name real objects, and
    valid bodies per operation (the generated ones rarely pass the cross-field rules)."""

    path_values: dict[str, list[str]] = field(default_factory=dict)
    # Jobs that ended: the only ones whose live event stream closes (no worker runs the others).
    ended_jobs: list[str] = field(default_factory=list)
    bodies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def use(self, other: Seeded) -> None:
        self.path_values, self.ended_jobs, self.bodies = other.path_values, other.ended_jobs, other.bodies


SEEDED = Seeded()


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """Some of the time, a path parameter names a seeded object instead of a generated value."""
    streams = context.operation is not None and context.operation.path.endswith("/events")
    seeded = {**SEEDED.path_values, "job_id": SEEDED.ended_jobs} if streams else SEEDED.path_values
    names = [name for name in path_parameters or {} if seeded.get(name)]
    if not path_parameters or not names:
        return st.just(path_parameters)
    chosen = st.fixed_dictionaries({name: st.sampled_from(seeded[name]) for name in names})
    return st.one_of(st.just(path_parameters), chosen.map(lambda values: {**path_parameters, **values}))


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Some of the time, a valid body (with the generated query and headers: `wait`, idempotency keys)."""
    valid = SEEDED.bodies.get(context.operation.label) if context.operation is not None else None
    if not valid:
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(valid))


@pytest.fixture
def state(settings: Settings, db: RollbackDatabase, redis: Redis) -> AppState:
    # No worker runs: a `wait` would hold each request for the server's whole maximum wait.
    fuzz_settings = settings.model_copy(update={"max_wait_seconds": 0.05})
    with db.unit_of_work() as session:
        models_repo.upsert(session, fuzz_settings.default_model, "transformers", None)
    return AppState(
        settings=fuzz_settings,
        db=db,
        redis=redis,
        async_redis=AsyncRedis.from_url(TEST_REDIS_URL),
        queue=JobQueue(redis, fuzz_settings.job_timeout_seconds),
    )


@pytest.fixture
def headers(state: AppState) -> dict[str, str]:
    """A key of every scope."""
    with state.db.unit_of_work() as session:
        _, token = create_key(session, TENANT, list(SCOPES), "fuzz")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(state: AppState, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    app = create_app(state=state)
    monkeypatch.setattr(worker_context, "_current", None)
    with TestClient(app, headers=headers) as client:
        seeded = _seed(client, state)
    SEEDED.use(seeded)
    yield app
    SEEDED.use(Seeded())


def _created(response: Response) -> str:
    assert response.status_code in (201, 202), response.text
    return str(response.json()["id"])


def _verdict_or_rating(conv: Conversation) -> str:
    """Grading prompts (their reply starts "Rating") get a rating, pairwise ones the first position: every
    seeded item is judged (a job whose every item failed now ends failed)."""
    return "7]]" if conv[-1]["content"].startswith("Rating") else first_position_judge(conv)


def _seed(client: TestClient, state: AppState) -> Seeded:
    """A dataset, a template, judging jobs (one queued, two judged by a scripted worker), a queued
    prompt optimization and self-reward job, and a model trained for the tenant; valid bodies."""
    pair = {"question": "What is 2+2?", "answer_a": "4", "answer_b": "five"}
    single = {"turns": ["Name a prime.", "A bigger one?"], "answers": ["2", "3"]}
    rows = [{"text": f"statement {i}", "label": "Yes" if i % 2 else "No"} for i in range(8)]
    dataset_id = _created(client.post("/v1/datasets", json={"name": "fuzz", "rows": rows}))
    template = {
        "name": "fuzz-judge",
        "mode": "pairwise",
        "system": "Judge.",
        "user": "{question}\nA: {answer_a}\nB: {answer_b}\nReply [[A]], [[B]] or [[C]].",
    }
    assert client.post("/v1/templates", json=template).status_code == 201

    install_scripted_worker(state.settings, state.db, state.queue, _verdict_or_rating, "fuzz-worker")
    judged = _created(client.post("/v1/judgments/pairwise", json={"items": [pair, pair]}))
    graded = _created(client.post("/v1/judgments/single", json={"items": [single]}))
    run_job(judged)
    run_job(graded)
    assert {client.get(f"/v1/jobs/{j}").json()["status"] for j in (judged, graded)} == {"succeeded"}
    # (Not answered from the verdict cache, which holds the pair's judgment: this job stays queued.)
    queued = _created(client.post("/v1/judgments/pairwise", json={"items": [pair], "cache": "off"}))

    optimization = {
        "task_description": "Fact-checking of short statements",
        "labels": ["No", "Yes"],
        "initial_prompt": "# Task\nIs it true?\n\n# Output format\nYes or No.\n\n{text}\nAnswer:",
        "data": {split: {"dataset_id": dataset_id} for split in ("train", "dev", "test")},
    }
    prompt_opt = _created(client.post("/v1/jobs/prompt-optimization", json=optimization))
    self_reward = _created(client.post("/v1/jobs/self-reward", json={}))
    with state.db.unit_of_work() as session:
        root = models_repo.get_by_name(session, state.settings.default_model)
        assert root is not None
        trained = models_repo.register_trained(
            session,
            name="fuzz-sr-1",
            backend="transformers",
            artifact_path="/models/fuzz-sr-1",
            parent_id=root.id,
            job_id=uuid.UUID(self_reward),
            iteration=1,
            metrics={"dpo": {"loss": 0.5}},
            owner=TENANT,
        )
    return Seeded(
        path_values={
            "job_id": [queued, judged, graded, prompt_opt, self_reward],
            "dataset_id": [dataset_id],
            "model": [state.settings.default_model, "fuzz-sr-1", str(trained.id)],
        },
        ended_jobs=[judged, graded],
        bodies={
            "POST /v1/judgments/pairwise": [
                {"items": [pair]},
                {"items": [pair], "template": "fuzz-judge", "model": "fuzz-sr-1", "swap": "random"},
            ],
            "POST /v1/judgments/single": [{"items": [single]}, {"items": [single], "cot": True}],
            "POST /v1/templates": [{**template, "name": "fuzz-judge-2"}, template],
            "POST /v1/jobs/prompt-optimization": [optimization, {**optimization, "dry_run": True}],
            "POST /v1/jobs/self-reward": [{}, {"base_model": "fuzz-sr-1", "iterations": 1}],
        },
    )


@schema.parametrize()
# (These replace the configuration's health checks.) The fixtures hold for every example of one operation
# on purpose: one app, one rolled-back transaction. Requests to a real database are slow for Hypothesis'
# taste, and request bodies are large by design.
@settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ]
)
def test_api(case: schemathesis.Case, app: FastAPI, headers: dict[str, str]) -> None:
    SENT[case.operation.label] += 1
    case.call_and_validate(app=app, headers=headers)


def test_the_fuzz_sent_enough_requests() -> None:
    """Runs after every operation's fuzz (pytest keeps the module's order)."""
    if not SENT:
        pytest.skip("the operations were not fuzzed in this run")
    operations = {result.ok().label for result in schema.get_all_operations() if isinstance(result, Ok)}
    assert set(SENT) == operations, f"not fuzzed: {sorted(operations - set(SENT))}"
    assert sum(SENT.values()) >= MIN_REQUESTS, SENT
    print(f"\nfuzzed {len(SENT)} operations with {sum(SENT.values())} requests")
