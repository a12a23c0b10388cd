"""Tenant isolation: another tenant's objects do not exist for a caller.

Tenant A (``default``, the ``client`` fixture's key) owns a judged job, a queued job, a prompt-optimization
job, a self-reward job, datasets, a template and a trained model. Tenant B (``acme``, every scope) must
get exactly what it gets for an id that does not exist, on every route that takes an id or a name (reads,
writes and deletes), leave A's objects unchanged, never see them in a list, and never reach them by a
reference inside a request body. Every route of the app with a path parameter must be covered here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.state import AppState
from app.jobs import repository as jobs_repo
from app.models import repository as models_repo
from tests.api.helpers import DEFAULT_MODEL, PAIR, PAIRWISE, SINGLE, SINGLE_URL, assert_error
from tests.api.test_prompt_opt import body as optimization_body
from tests.api.test_prompt_opt import judge_body
from tests.workers.conftest import first_position_judge
from workers.tasks import run_job

if TYPE_CHECKING:
    from httpx2 import Response  # what TestClient answers with

PROMPT_OPT = "/v1/jobs/prompt-optimization"
SELF_REWARD = "/v1/jobs/self-reward"
TEMPLATE = {
    "name": "house-judge",
    "mode": "pairwise",
    "system": "Judge.",
    "user": "{question}\nA: {answer_a}\nB: {answer_b}\nReply [[A]], [[B]] or [[C]].",
}
# Rows that serve as IFT and EFT seed data (prompt, response, judgment; the score is the label).
EFT_ROWS = [
    {
        "prompt": f"Name a fruit ({i}).",
        "response": "Apple.",
        "judgment": f"Terse.\nScore: {i % 6}",
        "label": i % 6,
    }
    for i in range(12)
]
STATEMENTS = [{"text": f"statement {i}", "label": "Yes" if i % 2 else "No"} for i in range(8)]


@dataclass(frozen=True)
class Owned:
    """Tenant A's objects."""

    judged_job: str
    queued_job: str
    prompt_opt_job: str
    self_reward_job: str
    dataset: str
    eft_dataset: str
    model_id: str
    model_name: str

    @property
    def jobs(self) -> list[str]:
        return [self.judged_job, self.queued_job, self.prompt_opt_job, self.self_reward_job]


def _created(response: Response) -> str:
    assert response.status_code in (201, 202), response.text
    return str(response.json()["id"])


@pytest.fixture
def owned(client: TestClient, state: AppState, worker: Callable[..., object]) -> Owned:
    dataset = _created(client.post("/v1/datasets", json={"name": "statements", "rows": STATEMENTS}))
    eft_dataset = _created(client.post("/v1/datasets", json={"name": "eft", "rows": EFT_ROWS}))
    assert client.post("/v1/templates", json=TEMPLATE).status_code == 201
    worker(first_position_judge)
    judged = _created(client.post(PAIRWISE, json={"items": [PAIR]}))
    assert run_job(judged) == "done"
    # (The verdict cache would answer the very job just judged at once: this one must stay queued.)
    queued = _created(client.post(PAIRWISE, json={"items": [PAIR], "cache": "off"}))
    splits = {s: {"dataset_id": dataset, "rows": None} for s in ("train", "dev", "test")}
    prompt_opt = _created(client.post(PROMPT_OPT, json=optimization_body(data=splits)))
    self_reward = _created(client.post(SELF_REWARD, json={}))
    with state.db.unit_of_work() as session:
        root = models_repo.get_by_name(session, DEFAULT_MODEL)
        assert root is not None
        model = models_repo.register_trained(
            session,
            name="house-sr-1",
            backend="transformers",
            artifact_path="/models/house-sr-1",
            parent_id=root.id,
            job_id=uuid.UUID(self_reward),
            iteration=1,
            metrics={"dpo": {"loss": 0.5}},
            owner="default",
        )
        model_id = str(model.id)
    return Owned(judged, queued, prompt_opt, self_reward, dataset, eft_dataset, model_id, "house-sr-1")


class Caller:
    """``client`` called with another key: the same client, so the same event loop as the app's async
    Redis connections (a second TestClient would run the app on a loop of its own)."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.token = token

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token}"}
        return self.client.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def other(client: TestClient, state: AppState) -> Caller:
    """Tenant B, with a key of every scope."""
    with state.db.unit_of_work() as session:
        _, token = create_key(session, "acme", list(SCOPES), "acme test key")
    return Caller(client, token)


# Routes that take an id or a name ----------------------------------------------------------------


@dataclass(frozen=True)
class IdRoute:
    """A route's path parameter, its values that name A's objects, and a value that names nothing.
    ``owner_values`` are those the owner's own call ends on (a live stream of a queued job never does)."""

    param: str
    values: Callable[[Owned], list[str]]
    missing: str
    owner_values: Callable[[Owned], list[str]] | None = None


def _jobs(owned: Owned) -> list[str]:
    return owned.jobs


def _datasets(owned: Owned) -> list[str]:
    return [owned.dataset]


ID_ROUTES: dict[tuple[str, str], IdRoute] = {
    ("GET", "/v1/jobs/{job_id}"): IdRoute("job_id", _jobs, str(uuid.uuid4())),
    ("GET", "/v1/jobs/{job_id}/results"): IdRoute("job_id", _jobs, str(uuid.uuid4())),
    ("GET", "/v1/jobs/{job_id}/events"): IdRoute(
        "job_id", _jobs, str(uuid.uuid4()), owner_values=lambda o: [o.judged_job]
    ),
    ("POST", "/v1/jobs/{job_id}/cancel"): IdRoute("job_id", _jobs, str(uuid.uuid4())),
    ("GET", "/v1/jobs/{job_id}/summary"): IdRoute("job_id", _jobs, str(uuid.uuid4())),
    ("GET", "/v1/jobs/{job_id}/deliveries"): IdRoute("job_id", _jobs, str(uuid.uuid4())),
    ("GET", "/v1/datasets/{dataset_id}"): IdRoute("dataset_id", _datasets, str(uuid.uuid4())),
    ("GET", "/v1/datasets/{dataset_id}/rows"): IdRoute("dataset_id", _datasets, str(uuid.uuid4())),
    ("DELETE", "/v1/datasets/{dataset_id}"): IdRoute("dataset_id", _datasets, str(uuid.uuid4())),
    ("GET", "/v1/models/{model}"): IdRoute("model", lambda o: [o.model_name, o.model_id], "no-such-model"),
}


def _id_routes(client: TestClient) -> set[tuple[str, str]]:
    """Every (method, path) the app serves whose path takes a parameter (from the app's own OpenAPI
    document, which lists every route of every included router)."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return {(method.upper(), path) for path, ops in paths.items() if "{" in path for method in ops}


def test_every_route_that_takes_an_id_is_covered(client: TestClient) -> None:
    routes = _id_routes(client)
    assert routes, "no route with a path parameter found"
    assert routes == set(ID_ROUTES), f"routes without an isolation test: {sorted(routes - set(ID_ROUTES))}"


def _view(client: TestClient, owned: Owned) -> dict[str, Any]:
    """Everything tenant A can read of its objects."""
    paths = [
        *(f"/v1/jobs/{job}" for job in owned.jobs),
        *(f"/v1/jobs/{job}/results" for job in owned.jobs),
        f"/v1/datasets/{owned.dataset}",
        f"/v1/datasets/{owned.dataset}/rows",
        f"/v1/models/{owned.model_id}",
        "/v1/jobs",
        "/v1/datasets",
        "/v1/templates",
        "/v1/models",
    ]
    view = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        view[path] = response.json()
    return view


def _without(text: str, *refs: str) -> str:
    for ref in refs:
        text = text.replace(ref, "<ref>")
    return text


def assert_same_as_missing(foreign: Response, foreign_ref: str, missing: Response, missing_ref: str) -> None:
    """The answer about another tenant's object is the answer about one that does not exist (the
    reference itself aside)."""
    assert foreign.status_code == missing.status_code, foreign.text
    assert _without(foreign.text, foreign_ref) == _without(missing.text, missing_ref)


@pytest.mark.parametrize(
    ("method", "path"), sorted(ID_ROUTES), ids=[f"{m} {p}" for m, p in sorted(ID_ROUTES)]
)
def test_another_tenants_object_is_not_found_and_stays_unchanged(
    client: TestClient, other: Caller, state: AppState, owned: Owned, method: str, path: str
) -> None:
    route = ID_ROUTES[(method, path)]
    before = _view(client, owned)
    missing = other.request(method, path.format(**{route.param: route.missing}))
    assert_error(missing, 404, "not_found", None)
    for value in route.values(owned):
        foreign = other.request(method, path.format(**{route.param: value}))
        assert_same_as_missing(foreign, value, missing, route.missing)
    assert _view(client, owned) == before
    with state.db.unit_of_work() as session:
        assert not any(jobs_repo.is_cancel_requested(session, uuid.UUID(job)) for job in owned.jobs)
    # The owner reaches its objects on the same route (so the 404 above is about the tenant).
    for value in (route.owner_values or route.values)(owned):
        assert client.request(method, path.format(**{route.param: value})).status_code != 404


# Lists -------------------------------------------------------------------------------------------


def test_lists_never_show_another_tenants_objects(client: TestClient, other: Caller, owned: Owned) -> None:
    def ids(caller: TestClient | Caller, path: str, key: str, **params: str) -> set[str]:
        response = caller.get(path, params=params)
        assert response.status_code == 200, response.text
        return {str(item["id"]) for item in response.json()[key]}

    for params in ({}, {"kind": "judge_pairwise"}, {"status": "queued"}, {"model": owned.model_name}):
        assert ids(other, "/v1/jobs", "jobs", **params) == set()
    assert ids(client, "/v1/jobs", "jobs") == set(owned.jobs)
    assert ids(other, "/v1/datasets", "datasets") == set()
    assert ids(client, "/v1/datasets", "datasets") == {owned.dataset, owned.eft_dataset}
    assert owned.model_id not in ids(other, "/v1/models", "models")
    assert owned.model_id in ids(client, "/v1/models", "models")

    def template_names(caller: TestClient | Caller) -> set[str]:
        return {t["name"] for t in caller.get("/v1/templates").json()["templates"] if not t["builtin"]}

    assert template_names(other) == set() and template_names(client) == {"house-judge"}

    # A shared model's lineage lists only the caller's own descendants.
    def children(caller: TestClient | Caller) -> list[str]:
        return [c["id"] for c in caller.get(f"/v1/models/{DEFAULT_MODEL}").json()["children"]]

    assert children(other) == [] and children(client) == [owned.model_id]


# References inside request bodies ----------------------------------------------------------------


@dataclass(frozen=True)
class BodyRef:
    """A request naming one of A's objects at ``field`` (``build(ref)`` makes the body)."""

    url: str
    field: str
    build: Callable[[str], dict[str, Any]]
    ref: Callable[[Owned], str]
    missing: str


def _optimization(split: str) -> Callable[[str], dict[str, Any]]:
    def build(ref: str) -> dict[str, Any]:
        return optimization_body(data={split: {"dataset_id": ref, "rows": None}})

    return build


BODY_REFS: dict[str, BodyRef] = {
    "judging model by name": BodyRef(
        PAIRWISE, "model", lambda r: {"items": [PAIR], "model": r}, lambda o: o.model_name, "no-such-model"
    ),
    "judging model by id": BodyRef(
        SINGLE_URL,
        "model",
        lambda r: {"items": [SINGLE], "model": r},
        lambda o: o.model_id,
        str(uuid.uuid4()),
    ),
    "custom template": BodyRef(
        PAIRWISE, "template", lambda r: {"items": [PAIR], "template": r}, lambda o: "house-judge", "no-such"
    ),
    "custom template version": BodyRef(
        PAIRWISE,
        "template",
        lambda r: {"items": [PAIR], "template": r},
        lambda o: "house-judge@1",
        "no-such@1",
    ),
    **{
        f"optimization {split} dataset": BodyRef(
            PROMPT_OPT,
            f"data.{split}.dataset_id",
            _optimization(split),
            lambda o: o.dataset,
            str(uuid.uuid4()),
        )
        for split in ("train", "dev", "test")
    },
    "optimization dry run dataset": BodyRef(
        PROMPT_OPT,
        "data.train.dataset_id",
        lambda r: {**_optimization("train")(r), "dry_run": True},
        lambda o: o.dataset,
        str(uuid.uuid4()),
    ),
    "optimization task model": BodyRef(
        PROMPT_OPT, "task_model", lambda r: optimization_body(task_model=r), lambda o: o.model_name, "no-such"
    ),
    "optimization optimizer model": BodyRef(
        PROMPT_OPT,
        "optimizer_model",
        lambda r: optimization_body(optimizer_model=r),
        lambda o: o.model_id,
        str(uuid.uuid4()),
    ),
    "judge-agreement template": BodyRef(
        PROMPT_OPT,
        "judge_template",
        lambda r: judge_body(judge_template=r),
        lambda o: "house-judge",
        "no-such",
    ),
    "self-reward base model": BodyRef(
        SELF_REWARD, "base_model", lambda r: {"base_model": r}, lambda o: o.model_name, "no-such-model"
    ),
    "self-reward prompt generator": BodyRef(
        SELF_REWARD, "prompt_generator", lambda r: {"prompt_generator": r}, lambda o: o.model_id, "no-such"
    ),
    **{
        f"self-reward {source} dataset": BodyRef(
            SELF_REWARD,
            f"{source}.dataset_id",
            lambda r, source=source: {source: {"dataset_id": r}},  # type: ignore[misc]
            lambda o: o.eft_dataset,
            str(uuid.uuid4()),
        )
        for source in ("ift", "eft", "eft_heldout")
    },
}


@pytest.mark.parametrize("case", sorted(BODY_REFS))
def test_a_reference_in_a_body_cannot_reach_another_tenants_object(
    client: TestClient, other: Caller, owned: Owned, case: str
) -> None:
    spec = BODY_REFS[case]
    ref = spec.ref(owned)
    missing = other.post(spec.url, json=spec.build(spec.missing))
    assert_error(missing, 422, "validation_error", spec.field)
    foreign = other.post(spec.url, json=spec.build(ref))
    assert_same_as_missing(foreign, ref, missing, spec.missing)
    assert other.get("/v1/jobs").json()["jobs"] == []
    # The owner's own reference resolves (whatever else it then says about the request).
    own = client.post(spec.url, json=spec.build(ref))
    assert own.status_code < 300 or own.json()["error"].get("field") != spec.field, own.text


def test_an_idempotency_key_names_a_request_of_the_callers_tenant_only(
    client: TestClient, other: Caller, owned: Owned
) -> None:
    key = {"Idempotency-Key": "retry-1"}
    # (Not answered from the verdict cache, which holds the owned job's judgment of PAIR.)
    body = {"items": [PAIR], "cache": "off"}
    first = client.post(PAIRWISE, json=body, headers=key)
    assert first.status_code == 202, first.text
    # The same key and body from B is B's own new request, not a replay of A's job ...
    same = other.post(PAIRWISE, json=body, headers=key)
    assert same.status_code == 202, same.text
    assert same.json()["id"] != first.json()["id"]
    # ... and B's retry replays B's job; another body from B is B's conflict, whatever A sent.
    assert other.post(PAIRWISE, json=body, headers=key).json()["id"] == same.json()["id"]
    assert_error(other.post(SINGLE_URL, json={"items": [SINGLE]}, headers=key), 409, "conflict", None)
    assert client.post(PAIRWISE, json=body, headers=key).json()["id"] == first.json()["id"]
    assert {j["id"] for j in other.get("/v1/jobs").json()["jobs"]} == {same.json()["id"]}
