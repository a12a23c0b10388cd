"""Accepted judging requests: the job resource, what is recorded, and the delivery to the model's queue."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from rq.job import Job as RQJob
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.core.state import AppState
from app.db.tables import Job, JudgmentItem
from app.jobs.queue import delivery_id
from app.main import create_app
from app.models import repository as models_repo
from tests.api.helpers import (
    DEFAULT_MODEL,
    DEFAULT_QUEUE,
    MULTI_PAIR,
    MULTI_SINGLE,
    PAIR,
    PAIRWISE,
    SINGLE,
    SINGLE_URL,
    endpoint,
    with_,
)
from tests.workers.conftest import ScriptedEngine, first_position_judge, longer_answer_judge
from workers.tasks import run_job

Worker = Callable[[Callable[[Any], str]], ScriptedEngine]


def _queued(redis: Redis, queue: str = DEFAULT_QUEUE) -> list[str]:
    return Queue(queue, connection=redis).job_ids


def _items(state: AppState, job_id: str) -> list[dict[str, Any]]:
    """The recorded inputs of a job's items, in item order."""
    with state.db.unit_of_work() as session:
        rows = session.scalars(
            select(JudgmentItem).where(JudgmentItem.job_id == uuid.UUID(job_id)).order_by(JudgmentItem.index)
        )
        return [dict(row.inputs) for row in rows]


def _stored_params(state: AppState, job_id: str) -> dict[str, Any]:
    with state.db.unit_of_work() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        return dict(job.params)


@pytest.mark.parametrize(
    ("mode", "item", "kind", "extra_params"),
    [
        ("pairwise", PAIR, "judge_pairwise", {"swap": "conservative"}),
        ("single", SINGLE, "judge_single", {"swap": "none", "scale": {"min": 1, "max": 10}}),
    ],
)
def test_accepted_job_resource(
    client: TestClient, mode: str, item: dict[str, Any], kind: str, extra_params: dict[str, Any]
) -> None:
    response = client.post(endpoint(mode), json={"items": [item, item, item]})
    assert response.status_code == 202, response.text
    job = response.json()
    uuid.UUID(job["id"])
    datetime.fromisoformat(job["created_at"])
    assert {k: job[k] for k in ("kind", "status", "model", "progress", "stage", "attempts", "error")} == {
        "kind": kind,
        "status": "queued",
        "model": DEFAULT_MODEL,
        "progress": {"done": 0, "total": 3, "failed": 0},
        "stage": None,
        "attempts": 0,
        "error": None,
    }
    assert (job["started_at"], job["finished_at"], job["results"]) == (None, None, None)
    seed = job["params"].pop("seed")
    assert isinstance(seed, int) and 0 <= seed < 2**31
    # The template snapshot and the model's identity are internal and stay out of the resource.
    assert job["params"] == {
        "mode": mode,
        "cot": False,
        "temperature": 0.0,
        "max_tokens": 256,
        "reference_auto": False,
        "template": None,
        "cache": "use",
        **extra_params,
    }
    # The resource reads back the same.
    assert client.get(f"/v1/jobs/{job['id']}").json() == {**job, "params": {**job["params"], "seed": seed}}


PARAM_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("seed given", "pairwise", {"seed": 1234}, {"seed": 1234}),
    ("seed zero", "single", {"seed": 0}, {"seed": 0}),
    ("seed max", "pairwise", {"seed": 2**31 - 1}, {"seed": 2**31 - 1}),
    ("cot doubles default max_tokens", "pairwise", {"cot": True}, {"cot": True, "max_tokens": 1024}),
    ("cot single", "single", {"cot": True}, {"cot": True, "max_tokens": 1024}),
    ("explicit max_tokens with cot", "pairwise", {"cot": True, "max_tokens": 300}, {"max_tokens": 300}),
    ("max_tokens at the limit", "single", {"max_tokens": 4096}, {"max_tokens": 4096}),
    ("swap random", "pairwise", {"swap": "random"}, {"swap": "random"}),
    ("swap none", "pairwise", {"swap": "none"}, {"swap": "none"}),
    ("temperature", "pairwise", {"temperature": 0.7}, {"temperature": 0.7}),
    ("temperature max", "single", {"temperature": 2}, {"temperature": 2.0}),
    ("named template", "pairwise", {"template": "pairwise-cot"}, {"template": "pairwise-cot"}),
    ("versioned built-in", "single", {"template": "single@1"}, {"template": "single@1"}),
    ("reference auto", "single", {"reference": {"auto": True}}, {"reference_auto": True}),
    ("explicit default model", "pairwise", {"model": DEFAULT_MODEL}, {}),
    ("custom scale", "single", {"scale": {"min": 0, "max": 5.5}}, {"scale": {"min": 0, "max": 5.5}}),
]


@pytest.mark.parametrize(
    ("mode", "options", "expected"), [c[1:] for c in PARAM_CASES], ids=[c[0] for c in PARAM_CASES]
)
def test_params_record_the_options(
    client: TestClient, mode: str, options: dict[str, Any], expected: dict[str, Any]
) -> None:
    item = PAIR if mode == "pairwise" else SINGLE
    response = client.post(endpoint(mode), json={"items": [item], **options})
    assert response.status_code == 202, response.text
    params = response.json()["params"]
    assert {k: params[k] for k in expected} == expected


def test_each_request_without_a_seed_records_its_own(client: TestClient) -> None:
    seeds = {client.post(PAIRWISE, json={"items": [PAIR]}).json()["params"]["seed"] for _ in range(3)}
    assert len(seeds) == 3


def test_max_items_is_accepted(client: TestClient) -> None:
    response = client.post(SINGLE_URL, json={"items": [SINGLE] * 50})
    assert response.status_code == 202, response.text
    assert response.json()["progress"] == {"done": 0, "total": 50, "failed": 0}


# (id, mode, item, request options, default template chosen for the item)
DEFAULT_TEMPLATE_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    ("pairwise", "pairwise", PAIR, {}, "pairwise"),
    ("pairwise cot", "pairwise", PAIR, {"cot": True}, "pairwise-cot"),
    ("pairwise reference", "pairwise", with_(PAIR, reference="4"), {}, "pairwise-ref"),
    ("pairwise reference auto", "pairwise", PAIR, {"reference": {"auto": True}}, "pairwise-ref"),
    ("pairwise multi-turn", "pairwise", MULTI_PAIR, {}, "pairwise-multi"),
    (
        "pairwise multi-turn references cot",
        "pairwise",
        with_(MULTI_PAIR, references=["2", "3"]),
        {"cot": True},
        "pairwise-multi-ref-cot",
    ),
    (
        "one-turn conversation",
        "pairwise",
        with_(MULTI_PAIR, turns=["q"], answers_a=["a"], answers_b=["b"]),
        {},
        "pairwise",
    ),
    ("single", "single", SINGLE, {}, "single"),
    ("single multi-turn", "single", MULTI_SINGLE, {}, "single-multi"),
    ("single multi-turn auto ref", "single", MULTI_SINGLE, {"reference": {"auto": True}}, "single-multi-ref"),
    ("single reference cot", "single", with_(SINGLE, reference="4"), {"cot": True}, "single-ref-cot"),
]


@pytest.mark.parametrize(
    ("mode", "item", "options", "template"),
    [c[1:] for c in DEFAULT_TEMPLATE_CASES],
    ids=[c[0] for c in DEFAULT_TEMPLATE_CASES],
)
def test_default_template_fits_each_item(
    client: TestClient,
    state: AppState,
    mode: str,
    item: dict[str, Any],
    options: dict[str, Any],
    template: str,
) -> None:
    response = client.post(endpoint(mode), json={"items": [item], **options})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["params"]["template"] is None
    [inputs] = _items(state, job["id"])
    assert inputs["template"] == template
    assert set(_stored_params(state, job["id"])["templates"]) == {template}


def test_mixed_items_each_get_their_default_template(client: TestClient, state: AppState) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR, MULTI_PAIR, with_(PAIR, reference="4")]})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert [i["template"] for i in _items(state, job_id)] == ["pairwise", "pairwise-multi", "pairwise-ref"]
    assert set(_stored_params(state, job_id)["templates"]) == {"pairwise", "pairwise-multi", "pairwise-ref"}


@pytest.mark.parametrize(
    ("mode", "item", "turn", "recorded"),
    [
        ("pairwise", MULTI_PAIR, None, 1),
        ("pairwise", MULTI_PAIR, 1, 0),
        ("pairwise", MULTI_PAIR, 2, 1),
        ("single", MULTI_SINGLE, None, 1),
        ("single", MULTI_SINGLE, 1, 0),
        ("single", SINGLE, None, 0),
    ],
)
def test_multi_turn_items_judge_the_last_turn_by_default(
    client: TestClient, state: AppState, mode: str, item: dict[str, Any], turn: int | None, recorded: int
) -> None:
    response = client.post(endpoint(mode), json={"items": [with_(item, turn=turn)]})
    assert response.status_code == 202, response.text
    [inputs] = _items(state, response.json()["id"])
    assert inputs["turn"] == recorded  # 0-based
    assert inputs["turns"] == item.get("turns", [item.get("question")])


def test_multi_turn_template_judges_a_one_turn_item(client: TestClient) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR, MULTI_PAIR], "template": "pairwise-multi"})
    assert response.status_code == 202, response.text


# Delivery -----------------------------------------------------------------------------------


@pytest.fixture
def enqueued(state: AppState, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """Every JobQueue.enqueue call (job id, queue, attempt), passed on to the real queue."""
    calls: list[tuple[str, str, int]] = []
    enqueue = state.queue.enqueue

    def spy(job_id: uuid.UUID, queue: str, attempt: int = 0) -> None:
        calls.append((str(job_id), queue, attempt))
        enqueue(job_id, queue, attempt)

    monkeypatch.setattr(state.queue, "enqueue", spy)
    return calls


@pytest.mark.parametrize("mode", ["pairwise", "single"])
def test_job_is_handed_to_the_model_queue_once(
    client: TestClient, enqueued: list[tuple[str, str, int]], mode: str
) -> None:
    item = PAIR if mode == "pairwise" else SINGLE
    job_id = client.post(endpoint(mode), json={"items": [item]}).json()["id"]
    assert enqueued == [(job_id, DEFAULT_QUEUE, 0)]


@pytest.mark.parametrize("mode", ["pairwise", "single"])
def test_job_is_enqueued_once_on_the_model_queue(client: TestClient, redis: Redis, mode: str) -> None:
    item = PAIR if mode == "pairwise" else SINGLE
    job_id = client.post(endpoint(mode), json={"items": [item]}).json()["id"]
    assert _queued(redis) == [delivery_id(job_id, 0)]
    rq_job = RQJob.fetch(delivery_id(job_id, 0), connection=redis)
    assert rq_job.func_name == "workers.tasks.run_job"
    assert rq_job.args == (job_id,)


def test_each_job_is_enqueued_once_in_order(client: TestClient, redis: Redis) -> None:
    ids = [client.post(PAIRWISE, json={"items": [PAIR]}).json()["id"] for _ in range(3)]
    assert _queued(redis) == [delivery_id(i, 0) for i in ids]


def test_job_goes_to_the_queue_of_its_model(client: TestClient, state: AppState, redis: Redis) -> None:
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, "org/judge 7B", "vllm", None)
    response = client.post(PAIRWISE, json={"items": [PAIR], "model": "org/judge 7B"})
    assert response.status_code == 202, response.text
    assert response.json()["model"] == "org/judge 7B"
    assert _queued(redis, "judge.org_judge_7B") == [delivery_id(response.json()["id"], 0)]
    assert _queued(redis) == []


@pytest.fixture
def session_events() -> Iterator[list[str]]:
    """Records every Session commit and rollback, in order, while the test runs."""
    events: list[str] = []

    def on_commit(session: Session) -> None:
        events.append("commit")

    def on_rollback(session: Session) -> None:
        events.append("rollback")

    event.listen(Session, "after_commit", on_commit)
    event.listen(Session, "after_rollback", on_rollback)
    yield events
    event.remove(Session, "after_commit", on_commit)
    event.remove(Session, "after_rollback", on_rollback)


def test_enqueue_happens_after_the_commit(
    client: TestClient, state: AppState, session_events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state.queue, "enqueue", lambda *args: session_events.append("enqueue"))
    response = client.post(PAIRWISE, json={"items": [PAIR]})
    assert response.status_code == 202, response.text
    # (the key check's read is the request's first unit of work; the job's commit comes next)
    first = session_events.index("enqueue")
    assert first > 0 and session_events[first - 1] == "commit"
    assert session_events.count("enqueue") == 1


def test_failed_commit_enqueues_nothing(
    client: TestClient, state: AppState, redis: Redis, enqueued: list[tuple[str, str, int]]
) -> None:
    commits: list[Session] = []

    def fail(session: Session) -> None:
        # The request's second commit records the job (the first is the API key check's).
        commits.append(session)
        if len(commits) == 2:
            raise RuntimeError("database went away")

    event.listen(Session, "before_commit", fail)
    try:
        with TestClient(create_app(state=state), raise_server_exceptions=False, headers=client.headers) as c:
            response = c.post(PAIRWISE, json={"items": [PAIR]})
    finally:
        event.remove(Session, "before_commit", fail)
    assert response.status_code == 500
    assert response.json() == {"error": {"type": "internal_error", "message": "internal server error"}}
    assert enqueued == []
    assert _queued(redis) == []
    assert client.get("/v1/jobs").json()["jobs"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"items": [PAIR], "template": "nope"},
        {"items": [PAIR], "model": "nope"},
        {"items": [PAIR] * 51},
        {"items": [PAIR, MULTI_PAIR], "template": "pairwise"},
    ],
)
def test_refused_request_records_and_enqueues_nothing(
    client: TestClient, redis: Redis, enqueued: list[tuple[str, str, int]], body: dict[str, Any]
) -> None:
    assert client.post(PAIRWISE, json=body).status_code == 422
    assert enqueued == []
    assert _queued(redis) == []
    assert client.get("/v1/jobs").json()["jobs"] == []


# Waiting ------------------------------------------------------------------------------------


def test_wait_without_a_worker_returns_202_after_the_wait(client: TestClient) -> None:
    started = time.monotonic()
    response = client.post(PAIRWISE, params={"wait": 0.2}, json={"items": [PAIR]})
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert 0.2 <= elapsed < 2.0
    assert response.json()["status"] == "queued"
    assert response.json()["results"] is None


def test_wait_zero_does_not_wait(client: TestClient) -> None:
    started = time.monotonic()
    response = client.post(SINGLE_URL, params={"wait": 0}, json={"items": [SINGLE]})
    assert response.status_code == 202
    assert time.monotonic() - started < 1.0


def test_wait_is_capped_by_the_server_maximum(
    client: TestClient, state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state.settings, "max_wait_seconds", 0.1)
    started = time.monotonic()
    response = client.post(PAIRWISE, params={"wait": 30}, json={"items": [PAIR]})
    assert response.status_code == 202
    assert time.monotonic() - started < 2.0


def test_wait_returns_200_with_results_when_the_job_ends_in_time(
    client: TestClient, state: AppState, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The "worker" runs the job as soon as it is delivered, i.e. while the request waits.
    worker(longer_answer_judge)
    monkeypatch.setattr(state.queue, "enqueue", lambda job_id, queue, attempt=0: run_job(str(job_id)))
    started = time.monotonic()
    response = client.post(PAIRWISE, params={"wait": 30}, json={"items": [with_(PAIR, id="x")]})
    assert time.monotonic() - started < 10
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["status"], job["progress"]) == ("succeeded", {"done": 1, "total": 1, "failed": 0})
    [result] = job["results"]
    assert (result["id"], result["status"], result["verdict"], result["consistent"]) == ("x", "ok", "B", True)


# Templates by name --------------------------------------------------------------------------

CUSTOM_V1 = "Q: {question}\nFirst: {answer_a}\nSecond: {answer_b}\nv1 says [[A]], [[B]] or [[C]]."
CUSTOM_V2 = CUSTOM_V1.replace("v1", "v2")


@pytest.fixture
def custom_template(client: TestClient) -> str:
    for user in (CUSTOM_V1, CUSTOM_V2):
        response = client.post("/v1/templates", json={"name": "my-judge", "mode": "pairwise", "user": user})
        assert response.status_code == 201, response.text
    return "my-judge"


@pytest.mark.parametrize(
    ("ref", "version", "user"), [("my-judge", 2, CUSTOM_V2), ("my-judge@1", 1, CUSTOM_V1)]
)
def test_registered_template_by_name_and_version(
    client: TestClient, state: AppState, custom_template: str, ref: str, version: int, user: str
) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR], "template": ref})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.json()["params"]["template"] == ref
    snapshot = _stored_params(state, job_id)["templates"]
    assert set(snapshot) == {"my-judge"}
    assert (snapshot["my-judge"]["version"], snapshot["my-judge"]["user"]) == (version, user)
    assert _items(state, job_id)[0]["template"] == "my-judge"


def test_unknown_version_of_a_registered_template(client: TestClient, custom_template: str) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR], "template": "my-judge@3"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "template"


def test_registered_template_of_the_other_mode_does_not_fit(client: TestClient, custom_template: str) -> None:
    response = client.post(SINGLE_URL, json={"items": [SINGLE], "template": custom_template})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "items[0]"


def test_queued_job_keeps_the_template_version_it_was_given(
    client: TestClient, custom_template: str, worker: Worker
) -> None:
    engine = worker(first_position_judge)
    job_id = client.post(
        PAIRWISE, json={"items": [PAIR], "template": custom_template, "swap": "none"}
    ).json()["id"]
    # A new version registered after the request does not change the queued job.
    client.post(
        "/v1/templates", json={"name": "my-judge", "mode": "pairwise", "user": CUSTOM_V1.replace("v1", "v3")}
    )
    assert run_job(job_id) == "done"
    [[prompt]] = engine.batches
    # A custom template without a response prefix ends on the user message.
    assert prompt[-1] == {"role": "user", "content": CUSTOM_V2.format(**PAIR)}


# Results ------------------------------------------------------------------------------------


def test_results_are_pending_before_a_worker_runs(client: TestClient) -> None:
    items = [with_(PAIR, id="first"), PAIR, with_(MULTI_PAIR, id="third")]
    job_id = client.post(PAIRWISE, json={"items": items}).json()["id"]
    response = client.get(f"/v1/jobs/{job_id}/results")
    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["job_id"], page["status"], page["next_cursor"]) == (job_id, "queued", None)
    assert page["results"] == [
        {
            "index": i,
            "id": item_id,
            "status": "pending",
            "verdict": None,
            "score": None,
            "consistent": None,
            "error": None,
            "expected_score": None,
            "probabilities": None,
            "generated_references": None,
            "votes": None,
            "score_std": None,
            "agreement": None,
            "cached": False,
            "orders": [],
            "rubric": None,
            "judges": None,
        }
        for i, item_id in enumerate(["first", None, "third"])
    ]


@pytest.mark.parametrize(
    ("cot", "prefix", "reply"),
    [(False, "Verdict: [[", "A]]"), (True, "", "The first answer shown is better. [[A]]")],
    ids=["built-in prefix", "cot without prefix"],
)
def test_job_run_in_process_shows_verdicts_with_both_orders(
    client: TestClient, worker: Worker, cot: bool, prefix: str, reply: str
) -> None:
    # A maximally position-biased judge: always prefers whatever is shown first.
    engine = worker(lambda conv: reply)
    items = [with_(PAIR, id=f"item-{i}") for i in range(3)]
    job_id = client.post(PAIRWISE, json={"items": items, "cot": cot}).json()["id"]
    assert run_job(job_id) == "done"

    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["progress"], job["attempts"]) == (
        "succeeded",
        {"done": 3, "total": 3, "failed": 0},
        1,
    )
    assert job["started_at"] is not None and job["finished_at"] is not None

    page = client.get(f"/v1/jobs/{job_id}/results").json()
    assert page["status"] == "succeeded"
    assert [r["id"] for r in page["results"]] == ["item-0", "item-1", "item-2"]
    for result in page["results"]:
        # It disagrees with itself across orders, so conservative swap calls a tie.
        assert (result["status"], result["verdict"], result["consistent"]) == ("ok", "tie", False)
        # The raw output keeps the reply prefix the model continued.
        assert [(o["order"], o["verdict"], o["raw"]) for o in result["orders"]] == [
            ("AB", "A", prefix + reply),
            ("BA", "B", prefix + reply),
        ]
        assert all(o["tokens_in"] == 10 and o["tokens_out"] == 3 for o in result["orders"])
    prompts = [p for batch in engine.batches for p in batch]
    assert len(prompts) == 6
    if prefix:
        assert all(p[-1] == {"role": "assistant", "content": prefix} for p in prompts)
    else:
        assert all(p[-1]["role"] == "user" for p in prompts)


def test_single_job_run_in_process_shows_scores(client: TestClient, worker: Worker) -> None:
    worker(lambda conv: "4]]")
    job_id = client.post(
        SINGLE_URL, json={"items": [with_(SINGLE, id="s")], "scale": {"min": 1, "max": 5}}
    ).json()["id"]
    assert run_job(job_id) == "done"
    [result] = client.get(f"/v1/jobs/{job_id}/results").json()["results"]
    assert (result["id"], result["status"], result["score"], result["verdict"]) == ("s", "ok", 4.0, None)
    assert [(o["order"], o["score"], o["raw"]) for o in result["orders"]] == [
        ("single", 4.0, "Rating: [[4]]")
    ]
