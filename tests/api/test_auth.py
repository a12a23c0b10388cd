"""API keys: every route but the health checks needs one; scopes gate routes; a tenant never sees
another tenant's objects (404, as if they did not exist)."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from app.auth import keys
from app.auth import repository as keys_repo
from app.auth.cache import PrincipalCache
from app.auth.service import Principal, create_key, revoke
from app.core.state import AppState
from app.main import create_app
from tests.api.helpers import assert_error
from tests.api.test_prompt_opt import body as po_body

PAIR = {"question": "2 + 2?", "answer_a": "4", "answer_b": "5"}


def _key(state: AppState, tenant: str, scopes: list[str]) -> tuple[uuid.UUID, str]:
    with state.db.unit_of_work() as session:
        record, token = create_key(session, tenant, scopes, f"{tenant} test key")
        return record.id, token


def _as(client: TestClient, token: str | None) -> TestClient:
    """The same app, called with another key (or none)."""
    other = TestClient(client.app)
    if token is not None:
        other.headers["Authorization"] = f"Bearer {token}"
    return other


def test_keys_are_random_prefixed_and_stored_only_as_a_digest() -> None:
    a, b = keys.make_key(), keys.make_key()
    assert a.token != b.token and a.prefix != b.prefix
    assert a.token.startswith(f"jk_{a.prefix}_") and len(a.token) > 40
    assert keys.prefix_of(a.token) == a.prefix
    assert a.digest == keys.digest(a.token) and a.token not in a.digest
    assert keys.matches(a.token, a.digest) and not keys.matches(b.token, a.digest)
    assert keys.prefix_of("Bearer nonsense") is None


def test_admin_holds_every_scope() -> None:
    assert keys.allows(frozenset({"admin"}), ("jobs",))
    assert keys.allows(frozenset({"judge"}), ("judge", "jobs"))
    assert not keys.allows(frozenset({"judge"}), ("jobs",))


def test_models_write_is_no_scope_any_more(state: AppState) -> None:
    """Issue 17 probe 10: `models:write` was granted but guarded no route."""
    assert "models:write" not in keys.SCOPES
    with state.db.unit_of_work() as session, pytest.raises(ValueError, match="scopes must be among"):
        create_key(session, "default", ["models:write"], "model uploader")


def test_health_needs_no_key(client: TestClient) -> None:
    anonymous = _as(client, None)
    assert anonymous.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing API key"),
        ("Basic dXNlcjpwYXNz", "malformed Authorization header"),
        ("Bearer ", "malformed Authorization header"),
        ("Bearer jk_abcdefgh_" + "x" * 43, "invalid API key"),
        ("Bearer not-a-key", "invalid API key"),
    ],
)
def test_requests_without_a_valid_key_are_401(client: TestClient, header: str | None, message: str) -> None:
    anonymous = _as(client, None)
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (("get", "/v1/jobs"), ("post", "/v1/judgments/pairwise"), ("get", "/v1/models")):
        response = anonymous.request(method, path, headers=headers, json={"items": [PAIR]})
        assert_error(response, 401, "unauthorized", None)
        assert message in response.json()["error"]["message"]


def test_every_route_that_needs_a_key_documents_401_and_403(client: TestClient) -> None:
    # (found by the schemathesis fuzz: GET /v1/templates and GET /v1/models answered an undocumented 401)
    for path, operations in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        if path.startswith("/v1"):
            for method, operation in operations.items():
                assert {"401", "403"} <= set(operation["responses"]), f"{method.upper()} {path}"


def test_a_revoked_key_stops_working_within_the_auth_cache_time(client: TestClient, state: AppState) -> None:
    state.principals = PrincipalCache(0.3)
    key_id, token = _key(state, "default", ["judge"])
    caller = _as(client, token)
    assert caller.get("/v1/jobs").status_code == 200
    with state.db.unit_of_work() as session:
        revoke(session, key_id)
    time.sleep(0.35)
    response = caller.get("/v1/jobs")
    assert_error(response, 401, "unauthorized", None)
    assert "revoked" in response.json()["error"]["message"]


def test_checked_keys_are_trusted_for_a_while_and_failures_are_not_kept() -> None:
    now = [100.0]
    cache = PrincipalCache(2.0, clock=lambda: now[0])
    principal = Principal(uuid.uuid4(), "t", frozenset({"judge"}))
    assert cache.get("jk_aaaaaaaa_secret") is None
    cache.put("jk_aaaaaaaa_secret", principal)
    assert cache.get("jk_aaaaaaaa_secret") == principal
    assert cache.get("jk_aaaaaaaa_other") is None  # another token, even with the same prefix
    now[0] += 2.1
    assert cache.get("jk_aaaaaaaa_secret") is None  # looked up again after ttl_seconds
    off = PrincipalCache(0)
    off.put("jk_aaaaaaaa_secret", principal)
    assert off.get("jk_aaaaaaaa_secret") is None


def test_a_key_refused_once_works_as_soon_as_it_exists(client: TestClient, state: AppState) -> None:
    key_id, token = _key(state, "default", ["judge"])
    with state.db.unit_of_work() as session:
        revoke(session, key_id)
    assert_error(_as(client, token).get("/v1/jobs"), 401, "unauthorized", None)
    _, fresh = _key(state, "default", ["judge"])
    assert _as(client, fresh).get("/v1/jobs").status_code == 200


def test_invalid_keys_are_limited_by_client_address(
    state: AppState, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 probe 10: invalid keys were not rate-limited, and each cost a database lookup."""
    limited = dataclasses.replace(
        state,
        settings=state.settings.model_copy(
            update={"auth_failures_per_second": 0.01, "auth_failures_burst": 3}
        ),
    )
    lookups: list[str] = []
    by_prefix = keys_repo.by_prefix
    monkeypatch.setattr(keys_repo, "by_prefix", lambda s, p: lookups.append(p) or by_prefix(s, p))
    with TestClient(create_app(state=limited)) as forger:
        owner = _bearer(api_key)
        assert forger.get("/v1/jobs", headers=owner).status_code == 200  # (this key is now checked lately)
        lookups.clear()
        for _ in range(3):
            response = forger.get("/v1/jobs", headers=_bearer(keys.make_key().token))
            assert_error(response, 401, "unauthorized", None)
        assert len(lookups) == 3
        refused = forger.get("/v1/jobs", headers=_bearer(keys.make_key().token))
        assert_error(refused, 429, "rate_limited", None)
        assert int(refused.headers["Retry-After"]) > 1
        assert len(lookups) == 3  # refused without a lookup
        # Missing or malformed headers cost no lookup and do not count; a key checked lately still works.
        assert_error(forger.get("/v1/jobs"), 401, "unauthorized", None)
        assert forger.get("/v1/jobs", headers=owner).status_code == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_stolen_prefix_with_a_wrong_secret_is_refused(client: TestClient, state: AppState) -> None:
    _, token = _key(state, "default", ["judge"])
    forged = token[: token.rindex("_") + 1] + "A" * 43
    assert_error(_as(client, forged).get("/v1/jobs"), 401, "unauthorized", None)


def test_scopes_gate_routes(client: TestClient, state: AppState) -> None:
    _, judge_only = _key(state, "default", ["judge"])
    _, jobs_only = _key(state, "default", ["jobs"])
    judge, jobs = _as(client, judge_only), _as(client, jobs_only)

    assert judge.post("/v1/judgments/pairwise", json={"items": [PAIR]}).status_code == 202
    response = judge.post("/v1/datasets", json={"name": "d", "rows": [{"text": "x", "label": "a"}]})
    assert_error(response, 403, "forbidden", None)
    assert "'jobs'" in response.json()["error"]["message"]

    assert_error(jobs.post("/v1/judgments/pairwise", json={"items": [PAIR]}), 403, "forbidden", None)
    assert (
        jobs.post("/v1/datasets", json={"name": "d", "rows": [{"text": "x", "label": "a"}]}).status_code
        == 201
    )
    # Both may read their jobs.
    assert judge.get("/v1/jobs").status_code == 200 and jobs.get("/v1/jobs").status_code == 200


def test_a_jobs_kind_is_reached_only_with_the_scope_that_creates_it(
    client: TestClient, state: AppState
) -> None:
    """Issue 17 probe 10: a `judge`-only key could read and cancel prompt-optimization jobs, a `jobs`-only
    key could cancel judging jobs."""
    judging = client.post("/v1/judgments/pairwise", json={"items": [PAIR]}).json()["id"]
    long_job = client.post("/v1/jobs/prompt-optimization", json=po_body()).json()["id"]
    _, judge_only = _key(state, "default", ["judge"])
    _, jobs_only = _key(state, "default", ["jobs"])
    judge, jobs = _as(client, judge_only), _as(client, jobs_only)

    for caller, theirs, other in ((judge, judging, long_job), (jobs, long_job, judging)):
        for path in (f"/v1/jobs/{other}", f"/v1/jobs/{other}/results", f"/v1/jobs/{other}/events"):
            assert_error(caller.get(path), 403, "forbidden", None)
        assert_error(caller.post(f"/v1/jobs/{other}/cancel"), 403, "forbidden", None)
        assert [job["id"] for job in caller.get("/v1/jobs").json()["jobs"]] == [theirs]
        assert caller.get(f"/v1/jobs/{theirs}").status_code == 200
    assert client.get(f"/v1/jobs/{judging}").json()["status"] == "queued"
    assert client.get(f"/v1/jobs/{long_job}").json()["status"] == "queued"
    assert judge.post(f"/v1/jobs/{judging}/cancel").json()["status"] == "cancelled"
    assert len(client.get("/v1/jobs").json()["jobs"]) == 2  # admin: every kind


def test_a_tenant_never_sees_another_tenants_objects(client: TestClient, state: AppState) -> None:
    # tenant "default" (the client's key) creates a job, a dataset and a template
    job_id = client.post("/v1/judgments/pairwise", json={"items": [PAIR]}).json()["id"]
    dataset_id = client.post(
        "/v1/datasets", json={"name": "d", "rows": [{"text": "x", "label": "a"}]}
    ).json()["id"]
    template = {
        "name": "house-judge",
        "mode": "pairwise",
        "system": "Judge.",
        "user": "{question}\nA: {answer_a}\nB: {answer_b}\nReply [[A]], [[B]] or [[C]].",
    }
    assert client.post("/v1/templates", json=template).status_code == 201

    _, token = _key(state, "acme", ["admin"])
    acme = _as(client, token)
    for path in (
        f"/v1/jobs/{job_id}",
        f"/v1/jobs/{job_id}/results",
        f"/v1/datasets/{dataset_id}",
        f"/v1/datasets/{dataset_id}/rows",
    ):
        assert_error(acme.get(path), 404, "not_found", None)
    assert_error(acme.post(f"/v1/jobs/{job_id}/cancel"), 404, "not_found", None)
    assert_error(acme.delete(f"/v1/datasets/{dataset_id}"), 404, "not_found", None)
    assert acme.get("/v1/jobs").json()["jobs"] == []
    assert acme.get("/v1/datasets").json()["datasets"] == []
    assert "house-judge" not in [t["name"] for t in acme.get("/v1/templates").json()["templates"]]
    response = acme.post("/v1/judgments/pairwise", json={"items": [PAIR], "template": "house-judge"})
    assert_error(response, 422, "validation_error", "template")
    # ... and may register a template of the same name, numbered on its own
    assert acme.post("/v1/templates", json=template).json()["version"] == 1
    # The owner still sees and uses its own.
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    assert (
        client.post("/v1/judgments/pairwise", json={"items": [PAIR], "template": "house-judge"}).status_code
        == 202
    )
