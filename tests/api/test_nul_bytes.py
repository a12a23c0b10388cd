"""A NUL character (U+0000) in any string a request carries is a 422 naming where it is, in both modes:
Postgres cannot store one (it was a 500 there) and the embedded SQLite mode stored it.

The string fields are read from the app's own OpenAPI document, so a new field is covered without a new
test: every path, query and header parameter, and every string position of every JSON request body.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis as AsyncRedis

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.config import Settings
from app.core.db import Database
from app.core.errors import format_loc
from app.core.migrate import upgrade
from app.core.state import AppState
from app.jobs.queue import JobQueue
from app.main import create_app
from app.models import repository as models_repo
from tests.api.helpers import PAIR, SINGLE, assert_error

NUL = "x\x00y"
JSONL_TYPES = ("application/x-ndjson", "application/jsonl")
Loc = tuple[int | str, ...]


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'judge.sqlite3'}"
    upgrade(url)
    return url


def _sqlite_client(settings: Settings, url: str) -> Iterator[TestClient]:
    """The app as the embedded mode runs it: a SQLite database and an in-process Redis."""
    settings = settings.model_copy(update={"database_url": url})
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeRedis(server=server)
    db = Database(url)
    with db.unit_of_work() as session:
        models_repo.upsert(session, settings.default_model, "transformers", None)
        _, token = create_key(session, "embedded", list(SCOPES), "tests")
    async_redis: AsyncRedis = fakeredis.FakeAsyncRedis(server=server)
    state = AppState(
        settings=settings,
        db=db,
        redis=redis,
        async_redis=async_redis,
        queue=JobQueue(redis, settings.job_timeout_seconds),
    )
    with TestClient(create_app(state=state), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
    db.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def any_client(request: pytest.FixtureRequest, settings: Settings) -> Iterator[TestClient]:
    if request.param == "postgres":
        yield request.getfixturevalue("client")
    else:
        yield from _sqlite_client(settings, request.getfixturevalue("sqlite_url"))


def _created(response: Any) -> str:
    assert response.status_code in (201, 202), response.text
    return str(response.json()["id"])


def _valid_requests(client: TestClient) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Real objects for the path parameters, and a valid JSON body per operation."""
    rows = [{"text": f"statement {i}", "label": "Yes" if i % 2 else "No"} for i in range(4)]
    dataset = _created(client.post("/v1/datasets", json={"name": "facts", "rows": rows}))
    job = _created(client.post("/v1/judgments/pairwise", json={"items": [PAIR]}))
    template = {"name": "nul-probe", "mode": "single", "user": "{question} {answer} [[rating]]"}
    optimization = {
        "task_description": "Fact-checking",
        "labels": ["No", "Yes"],
        "initial_prompt": "# Task\nIs it true?\n\n# Output format\nYes or No.\n\n{text}\nAnswer:",
        "data": {split: {"dataset_id": dataset} for split in ("train", "dev", "test")},
    }
    bodies = {
        "POST /v1/judgments/pairwise": {"items": [PAIR], "metadata": {"run": "r1"}},
        "POST /v1/judgments/single": {"items": [SINGLE]},
        "POST /v1/templates": template,
        "POST /v1/jobs/prompt-optimization": optimization,
        "POST /v1/jobs/self-reward": {},
        "POST /v1/datasets": {"name": "facts-2", "rows": rows},
    }
    return {"job_id": job, "dataset_id": dataset, "model": "SmolLM2-135M-Instruct"}, bodies


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _takes_string(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = _resolve(document, schema)
    if schema.get("type") == "string":
        return True
    if schema.get("type") == "array":
        return _takes_string(document, schema.get("items", {}))
    return any(_takes_string(document, s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _string_positions(
    document: dict[str, Any], schema: dict[str, Any], loc: Loc = (), depth: int = 0
) -> set[Loc]:
    """Every place in a body of this schema that holds a string (array items at index 0; a free-form
    object's values under the key ``k``)."""
    schema = _resolve(document, schema)
    if depth > 8:
        return set()
    found: set[Loc] = set()
    if schema.get("type") == "string":
        found.add(loc)
    for variant in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        found |= _string_positions(document, variant, loc, depth + 1)
    if "items" in schema:
        found |= _string_positions(document, schema["items"], (*loc, 0), depth + 1)
    for name, sub in schema.get("properties", {}).items():
        found |= _string_positions(document, sub, (*loc, name), depth + 1)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        found |= _string_positions(document, extra, (*loc, "k"), depth + 1)
    return found


def _put(body: Any, loc: Loc, value: str) -> Any:
    """``body`` with ``value`` at ``loc``, creating the containers on the way."""
    if not loc:
        return value
    head, rest = loc[0], loc[1:]
    if isinstance(head, int):
        items = (
            list(body)
            if isinstance(body, list) and body
            else [{} if rest and isinstance(rest[0], str) else []]
        )
        items[0] = _put(items[0] if isinstance(items[0], dict | list) else {}, rest, value) if rest else value
        return items
    node = dict(body) if isinstance(body, dict) else {}
    inner = node.get(head)
    node[head] = _put(
        inner if isinstance(inner, dict | list) else ([] if rest and isinstance(rest[0], int) else {}),
        rest,
        value,
    )
    return node


def _fill_path(path: str, values: dict[str, str], override: dict[str, str] | None = None) -> str:
    for name, value in {**values, **(override or {})}.items():
        path = path.replace("{" + name + "}", value)
    return path


def test_a_nul_in_any_string_field_of_the_openapi_document_is_a_422_naming_it(any_client: TestClient) -> None:
    client = any_client
    document = client.app.openapi()  # type: ignore[attr-defined]
    path_values, bodies = _valid_requests(client)
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            body = bodies.get(label)
            kwargs: dict[str, Any] = {"json": body} if body is not None else {}
            for parameter in operation.get("parameters", []):
                if not _takes_string(document, parameter["schema"]):
                    continue
                name, where = parameter["name"], parameter["in"]
                if where == "path":
                    response = client.request(
                        method, _fill_path(path, path_values, {name: "x%00y"}), **kwargs
                    )
                elif where == "query":
                    response = client.request(
                        method, _fill_path(path, path_values), params={name: NUL}, **kwargs
                    )
                else:
                    response = client.request(
                        method, _fill_path(path, path_values), headers={name: NUL}, **kwargs
                    )
                error = assert_error(response, 422, "validation_error", response.json()["error"].get("field"))
                assert (error.get("field") or "").lower() == name.lower(), (label, name, error)
                checked += 1
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                assert body is not None, f"no valid body for {label}"
                schema = content["application/json"]["schema"]
                for loc in sorted(_string_positions(document, schema), key=str):
                    sent = _put(copy.deepcopy(body), loc, NUL)
                    response = client.request(method, _fill_path(path, path_values), json=sent)
                    assert_error(response, 422, "validation_error", format_loc(("body", *loc)))
                    checked += 1
            for media_type in set(content) & set(JSONL_TYPES):
                lines = (
                    json.dumps({"text": "fine", "label": "Yes"})
                    + "\n"
                    + json.dumps({"text": NUL, "label": "No"})
                )
                response = client.request(
                    method,
                    _fill_path(path, path_values),
                    content=lines.encode(),
                    params={"name": "lines"},
                    headers={"content-type": media_type},
                )
                error = assert_error(response, 422, "validation_error", None)
                assert error["message"].startswith("line 2: text: must not contain"), error
                checked += 1
    assert checked > 80, checked


def test_a_nul_in_a_path_query_or_body_of_a_route_outside_the_document_is_a_422(client: TestClient) -> None:
    """The dashboard is left out of openapi.yaml; its MT-Bench leaderboard's `run` went to the database."""
    response = client.get("/dashboard/leaderboard", params={"run": NUL})
    assert response.status_code == 422, response.text
    response = client.post(
        "/dashboard/sign-in",
        content=b"api_key=a%00b",
        headers={"content-type": "application/x-www-form-urlencoded", "origin": "http://testserver"},
    )
    assert response.status_code == 422, response.text
    # A form sent to a route that reads its body itself: still refused, and still readable without one.
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert_error(
        client.post("/v1/datasets", content=b"name=a%00b", headers=form), 422, "validation_error", "name"
    )
    assert client.post("/v1/datasets", content=b"name=ab", headers=form).status_code == 415


def test_a_nul_in_a_metadata_key_or_a_dataset_field_name_is_a_422_naming_the_object(
    client: TestClient,
) -> None:
    response = client.post("/v1/judgments/pairwise", json={"items": [PAIR], "metadata": {"r\x00n": "1"}})
    error = assert_error(response, 422, "validation_error", "metadata")
    assert "keys must not contain" in error["message"]
    rows = [{"te\x00xt": "a", "label": "b"}]
    assert_error(
        client.post("/v1/datasets", json={"name": "n", "rows": rows}), 422, "validation_error", "rows[0]"
    )


def test_text_around_a_nul_escape_is_not_mistaken_for_one(client: TestClient) -> None:
    """`\\\\u0000` in JSON is a backslash and the text `u0000`: no NUL, accepted."""
    item = {**PAIR, "question": "what does \\u0000 mean in JSON?"}
    assert client.post("/v1/judgments/pairwise", json={"items": [item]}).status_code == 202
