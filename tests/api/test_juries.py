"""Juries (`judges`): what is refused, and a jury run by in-process workers of each judge model: one job
to the caller, every judge's result kept, the aggregate as the item's verdict, cancel reaching every
member."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from app.core.state import AppState
from app.jobs.queue import queue_name
from app.models import repository as models_repo
from tests.api.helpers import DEFAULT_MODEL, DEFAULT_QUEUE, PAIR, PAIRWISE, SINGLE, SINGLE_URL, assert_error
from tests.workers.conftest import ScriptedEngine, first_position_judge, longer_answer_judge
from workers import context, tasks

OTHER = "judge-b"
THIRD = "judge-c"


@pytest.fixture
def judges(state: AppState) -> list[str]:
    """The default model and two more registered names (each the root of its own queue)."""
    with state.db.unit_of_work() as session:
        for name in (OTHER, THIRD):
            models_repo.upsert(session, name, "transformers", None)
    return [DEFAULT_MODEL, OTHER, THIRD]


def run_as(state: AppState, model: str, reply: Any, job_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run one member job in-process, as a worker of ``model`` whose engine answers with ``reply``."""
    monkeypatch.setattr(context, "_current", None)
    settings = state.settings.model_copy(update={"batch_size": 4, "job_lease_seconds": 600.0})
    context.install(
        context.WorkerContext(
            settings=settings,
            db=state.db,
            queue=state.queue,
            engine=ScriptedEngine(reply),
            model=model,
            queue_name=queue_name(model),
            worker_id=f"jury-test-{model}",
        )
    )
    tasks.run_job(job_id)


# (id, endpoint, body, field, fragment of the message)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("one judge", PAIRWISE, {"items": [PAIR], "judges": [DEFAULT_MODEL]}, "judges", "at least 2"),
    (
        "eight judges",
        PAIRWISE,
        {"items": [PAIR], "judges": [f"m{i}" for i in range(8)]},
        "judges",
        "at most 7",
    ),
    (
        "model and judges",
        PAIRWISE,
        {"items": [PAIR], "model": DEFAULT_MODEL, "judges": [DEFAULT_MODEL, OTHER]},
        "model",
        "not both",
    ),
    ("twice", PAIRWISE, {"items": [PAIR], "judges": [OTHER, OTHER]}, "judges[1].model", "named twice"),
    ("unknown", PAIRWISE, {"items": [PAIR], "judges": [OTHER, "nope"]}, "judges[1].model", "unknown model"),
    (
        "mean of verdicts",
        PAIRWISE,
        {"items": [PAIR], "judges": [OTHER, THIRD], "aggregate": "mean"},
        "aggregate",
        "'majority' or 'weighted'",
    ),
    (
        "majority of scores",
        SINGLE_URL,
        {"items": [SINGLE], "judges": [OTHER, THIRD], "aggregate": "majority"},
        "aggregate",
        "'mean' or 'weighted'",
    ),
    (
        "weight without weighted",
        PAIRWISE,
        {"items": [PAIR], "judges": [OTHER, {"model": THIRD, "weight": 2}]},
        "judges[1].weight",
        "aggregate: weighted",
    ),
    ("aggregate alone", PAIRWISE, {"items": [PAIR], "aggregate": "majority"}, "aggregate", "needs `judges`"),
    (
        "unknown judge template",
        PAIRWISE,
        {"items": [PAIR], "judges": [OTHER, {"model": THIRD, "template": "nope"}]},
        "judges[1].template",
        "unknown template",
    ),
]


@pytest.mark.parametrize(
    ("url", "body", "field", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_unusable_juries_are_422_naming_the_field(
    client: TestClient,
    redis: Redis,
    judges: list[str],
    url: str,
    body: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    error = assert_error(client.post(url, json=body), 422, "validation_error", field)
    assert fragment in error["message"], error
    for model in judges:
        assert Queue(queue_name(model), connection=redis).job_ids == []
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_a_jury_is_one_job_whose_items_carry_every_judge(
    client: TestClient, state: AppState, redis: Redis, judges: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [
        {"question": "q1", "answer_a": "a long answer", "answer_b": "short"},
        {"question": "q2", "answer_a": "short", "answer_b": "a long answer"},
    ]
    body = {"items": items, "judges": [DEFAULT_MODEL, OTHER, THIRD], "metadata": {"run": "jury"}}
    created = client.post(PAIRWISE, json=body)
    assert created.status_code == 202, created.text
    jury = created.json()
    assert jury["status"] == "running"
    assert (jury["progress"]["done"], jury["progress"]["total"]) == (0, 2)
    assert jury["params"]["jury"]["aggregate"] == "majority"
    assert [j["model"] for j in jury["params"]["jury"]["judges"]] == judges
    # One delivery per judge, each on its own model's queue; the jury itself is never delivered.
    delivered = {model: Queue(queue_name(model), connection=redis).job_ids for model in judges}
    assert all(len(ids) == 1 for ids in delivered.values()), delivered
    assert jury["id"] not in str(delivered)
    # The caller's job list shows the jury only.
    assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [jury["id"]]

    replies = {DEFAULT_MODEL: longer_answer_judge, OTHER: longer_answer_judge, THIRD: first_position_judge}
    member_ids = {model: ids[0].rsplit("_", 1)[0] for model, ids in delivered.items()}
    for n, model in enumerate(judges):
        run_as(state, model, replies[model], member_ids[model], monkeypatch)
        shown = client.get(f"/v1/jobs/{jury['id']}").json()
        if n < len(judges) - 1:
            assert shown["status"] == "running"
            assert shown["progress"]["done"] == (2 * (n + 1)) // 3
    done = client.get(f"/v1/jobs/{jury['id']}/results").json()
    assert done["status"] == "succeeded"
    first, second = done["results"]
    # Two judges prefer the longer answer (in both orders); the third always picks what it sees first
    # (A then B after the swap: it ties under conservative swap).
    assert first["verdict"] == "A" and second["verdict"] == "B"
    assert [j["model"] for j in first["judges"]] == judges
    assert [j["verdict"] for j in first["judges"]] == ["A", "A", "tie"]
    assert first["votes"] == {"A": 2, "B": 0, "tie": 1}
    assert first["agreement"] == pytest.approx(2 / 3)
    # The first-position judge flips with the order, but the jury's majority in each order does not.
    assert first["consistent"] is True
    assert all(j["orders"] and j["job_id"] == member_ids[j["model"]] for j in first["judges"])
    assert client.get(f"/v1/jobs/{jury['id']}").json()["progress"]["done"] == 2
    summary = client.get(f"/v1/jobs/{jury['id']}/summary").json()
    assert summary["figures"]["verdicts"] == {"A": 1, "B": 1}
    panel = summary["jury"]
    assert panel["aggregate"] == "majority" and panel["ratings"] == "verdicts"
    assert [j["model"] for j in panel["judges"]] == judges
    # The first-position judge picks what it sees first every time; the others never do here.
    assert [j["first_position_rate"] for j in panel["judges"]] == [0.5, 0.5, 1.0]
    assert [j["consistency_rate"] for j in panel["judges"]] == [1.0, 1.0, 0.0]
    kappas = {(k["judge_a"], k["judge_b"]): k["kappa"] for k in panel["cohen_kappa"]}
    assert kappas[(DEFAULT_MODEL, OTHER)] == pytest.approx(1.0)
    assert panel["fleiss_items"] == 2


def test_weighted_single_jury_means_scores_by_weight(
    client: TestClient, state: AppState, redis: Redis, judges: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {
        "items": [SINGLE],
        "judges": [{"model": OTHER, "weight": 3}, {"model": THIRD, "weight": 1}],
        "aggregate": "weighted",
    }
    jury = client.post(SINGLE_URL, json=body).json()
    for model, score in ((OTHER, "8]]"), (THIRD, "4]]")):
        member = Queue(queue_name(model), connection=redis).job_ids[0].rsplit("_", 1)[0]
        run_as(state, model, lambda conv, s=score: s, member, monkeypatch)
    result = client.get(f"/v1/jobs/{jury['id']}/results").json()["results"][0]
    assert result["score"] == pytest.approx((3 * 8 + 1 * 4) / 4)
    assert [j["score"] for j in result["judges"]] == [8, 4]
    assert result["score_std"] == pytest.approx(2.8284, abs=1e-3)


def test_cancelling_a_jury_cancels_every_member(
    client: TestClient, state: AppState, redis: Redis, judges: list[str]
) -> None:
    jury = client.post(PAIRWISE, json={"items": [PAIR], "judges": [OTHER, THIRD], "cache": "off"}).json()
    cancelled = client.post(f"/v1/jobs/{jury['id']}/cancel")
    assert cancelled.status_code in (200, 202), cancelled.text
    shown = client.get(f"/v1/jobs/{jury['id']}").json()
    assert shown["status"] == "cancelled"
    for model in (OTHER, THIRD):
        member = Queue(queue_name(model), connection=redis).job_ids[0].rsplit("_", 1)[0]
        assert client.get(f"/v1/jobs/{member}").json()["status"] == "cancelled"
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []
