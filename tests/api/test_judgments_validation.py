"""Every bad judging request is refused with the one error body, naming the field at fault."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from tests.api.helpers import (
    DEFAULT_MODEL,
    DEFAULT_QUEUE,
    MULTI_PAIR,
    MULTI_SINGLE,
    PAIR,
    PAIRWISE,
    SINGLE,
    SINGLE_URL,
    assert_error,
    with_,
)

# (id, endpoint, body, field, fragment of the message)
CASES: list[tuple[str, str, dict[str, Any], str | None, str]] = [
    # The request as a whole.
    ("no items", PAIRWISE, {}, "items", "required"),
    ("empty items pairwise", PAIRWISE, {"items": []}, "items", "at least 1"),
    ("empty items single", SINGLE_URL, {"items": []}, "items", "at least 1"),
    ("items not a list", PAIRWISE, {"items": PAIR}, "items", "list"),
    ("body not an object", PAIRWISE, [PAIR], None, "dictionary"),  # type: ignore[list-item]
    ("51 items > max 50", PAIRWISE, {"items": [PAIR] * 51}, "items", "too many items: 51"),
    ("51 items > max 50 single", SINGLE_URL, {"items": [SINGLE] * 51}, "items", "at most 50"),
    ("unknown model", PAIRWISE, {"items": [PAIR], "model": "gpt-99"}, "model", "unknown model 'gpt-99'"),
    ("empty model", PAIRWISE, {"items": [PAIR], "model": ""}, "model", "at least 1"),
    ("unknown template", PAIRWISE, {"items": [PAIR], "template": "nope"}, "template", "unknown template"),
    (
        "unknown built-in version",
        PAIRWISE,
        {"items": [PAIR], "template": "pairwise@2"},
        "template",
        "unknown template 'pairwise@2'",
    ),
    (
        "template ref without version",
        PAIRWISE,
        {"items": [PAIR], "template": "pairwise@"},
        "template",
        "unknown",
    ),
    ("unknown top-level field", PAIRWISE, {"items": [PAIR], "judge": "x"}, "judge", "not permitted"),
    ("swap invalid", PAIRWISE, {"items": [PAIR], "swap": "sometimes"}, "swap", "conservative"),
    ("swap on the single endpoint", SINGLE_URL, {"items": [SINGLE], "swap": "none"}, "swap", "not permitted"),
    ("temperature above 2", PAIRWISE, {"items": [PAIR], "temperature": 2.5}, "temperature", "less than"),
    ("temperature negative", SINGLE_URL, {"items": [SINGLE], "temperature": -0.1}, "temperature", "greater"),
    ("max_tokens above limit", PAIRWISE, {"items": [PAIR], "max_tokens": 4097}, "max_tokens", "at most 4096"),
    (
        "max_tokens above limit single",
        SINGLE_URL,
        {"items": [SINGLE], "max_tokens": 10**6},
        "max_tokens",
        "4096",
    ),
    ("max_tokens zero", PAIRWISE, {"items": [PAIR], "max_tokens": 0}, "max_tokens", "greater than or equal"),
    ("seed negative", PAIRWISE, {"items": [PAIR], "seed": -1}, "seed", "greater than or equal"),
    ("seed above 2^31-1", PAIRWISE, {"items": [PAIR], "seed": 2**31}, "seed", "less than or equal"),
    ("cot not a bool", PAIRWISE, {"items": [PAIR], "cot": "maybe"}, "cot", "boolean"),
    (
        "reference auto false",
        PAIRWISE,
        {"items": [PAIR], "reference": {"auto": False}},
        "reference.auto",
        "True",
    ),
    (
        "reference with extra field",
        PAIRWISE,
        {"items": [PAIR], "reference": {"auto": True, "model": "x"}},
        "reference.model",
        "not permitted",
    ),
    # Scale (single only).
    (
        "scale min == max",
        SINGLE_URL,
        {"items": [SINGLE], "scale": {"min": 5, "max": 5}},
        "scale",
        "greater than min",
    ),
    ("scale min > max", SINGLE_URL, {"items": [SINGLE], "scale": {"min": 10, "max": 1}}, "scale", "max (1)"),
    ("scale out of bounds", SINGLE_URL, {"items": [SINGLE], "scale": {"max": 10**4}}, "scale.max", "1000"),
    (
        "scale extra field",
        SINGLE_URL,
        {"items": [SINGLE], "scale": {"step": 1}},
        "scale.step",
        "not permitted",
    ),
    (
        "scale on pairwise",
        PAIRWISE,
        {"items": [PAIR], "scale": {"min": 1, "max": 5}},
        "scale",
        "not permitted",
    ),
    # Templates that do not fit an item.
    (
        "single template on pairwise",
        PAIRWISE,
        {"items": [PAIR], "template": "single"},
        "items[0]",
        "is for single judging",
    ),
    (
        "pairwise template on single",
        SINGLE_URL,
        {"items": [SINGLE], "template": "pairwise"},
        "items[0]",
        "is for pairwise judging",
    ),
    (
        "single-turn template on a multi-turn item",
        PAIRWISE,
        {"items": [MULTI_PAIR], "template": "pairwise"},
        "items[0]",
        "multi-turn template",
    ),
    (
        "single-turn template on the second, multi-turn item",
        SINGLE_URL,
        {"items": [SINGLE, MULTI_SINGLE], "template": "single-cot"},
        "items[1]",
        "but the item has 2 turns",
    ),
    (
        "reference template without references",
        PAIRWISE,
        {"items": [PAIR], "template": "pairwise-ref"},
        "items[0]",
        "request has none",
    ),
    (
        "references with a template that does not show them",
        PAIRWISE,
        {"items": [with_(PAIR, reference="4")], "template": "pairwise"},
        "items[0]",
        "does not show them",
    ),
    (
        "reference auto with a template that does not show them",
        SINGLE_URL,
        {"items": [SINGLE], "template": "single", "reference": {"auto": True}},
        "items[0]",
        "does not show them",
    ),
    # Item shape: questions and turns.
    (
        "both question and turns",
        PAIRWISE,
        {"items": [with_(PAIR, turns=["q"])]},
        "items[0].question",
        "exactly one",
    ),
    (
        "neither question nor turns",
        PAIRWISE,
        {"items": [with_(PAIR, question=None)]},
        "items[0].question",
        "one",
    ),
    (
        "empty question",
        SINGLE_URL,
        {"items": [with_(SINGLE, question="")]},
        "items[0].question",
        "at least 1",
    ),
    ("empty turns list", PAIRWISE, {"items": [with_(MULTI_PAIR, turns=[])]}, "items[0].turns", "at least 1"),
    (
        "empty string among turns",
        SINGLE_URL,
        {"items": [with_(MULTI_SINGLE, turns=["", "x"])]},
        "items[0].turns",
        "empty strings",
    ),
    (
        "unknown item field",
        PAIRWISE,
        {"items": [with_(PAIR, answer_c="x")]},
        "items[0].answer_c",
        "not permitted",
    ),
    ("item id too long", PAIRWISE, {"items": [with_(PAIR, id="x" * 201)]}, "items[0].id", "at most 200"),
    # Item shape: answers.
    ("missing answer_b", PAIRWISE, {"items": [with_(PAIR, answer_b=None)]}, "items[0].answer_b", "answer_b"),
    ("missing answer_a", PAIRWISE, {"items": [with_(PAIR, answer_a=None)]}, "items[0].answer_a", "answer_a"),
    ("missing answer", SINGLE_URL, {"items": [with_(SINGLE, answer=None)]}, "items[0].answer", "exactly one"),
    (
        "answer_a and answers_a",
        PAIRWISE,
        {"items": [with_(PAIR, answers_a=["4"])]},
        "items[0].answer_a",
        "exactly one",
    ),
    (
        "single-turn answer on a multi-turn item",
        PAIRWISE,
        {"items": [with_(MULTI_PAIR, answers_a=None, answer_a="2")]},
        "items[0].answers_a",
        "needs `answers_a`",
    ),
    (
        "answers_a count != turns",
        PAIRWISE,
        {"items": [with_(MULTI_PAIR, answers_a=["2"])]},
        "items[0].answers_a",
        "one answer per turn (2), got 1",
    ),
    (
        "answers_b count != turns",
        PAIRWISE,
        {"items": [with_(MULTI_PAIR, answers_b=["4", "9", "16"])]},
        "items[0].answers_b",
        "got 3",
    ),
    (
        "answers count != turns",
        SINGLE_URL,
        {"items": [with_(MULTI_SINGLE, answers=["2"])]},
        "items[0].answers",
        "one answer per turn",
    ),
    # Item shape: references and the judged turn.
    (
        "references count != turns",
        PAIRWISE,
        {"items": [with_(MULTI_PAIR, references=["r1"])]},
        "items[0].references",
        "one entry per turn (2), got 1",
    ),
    (
        "reference with turns",
        SINGLE_URL,
        {"items": [with_(MULTI_SINGLE, reference="r")]},
        "items[0].reference",
        "use `references`",
    ),
    (
        "reference and references",
        PAIRWISE,
        {"items": [with_(PAIR, reference="4", references=["4"])]},
        "items[0].references",
        "at most one",
    ),
    (
        "turn beyond the conversation",
        PAIRWISE,
        {"items": [with_(MULTI_PAIR, turn=3)]},
        "items[0].turn",
        "turn 3 was requested but the conversation has 2",
    ),
    (
        "turn 2 of a one-turn item",
        SINGLE_URL,
        {"items": [with_(SINGLE, turn=2)]},
        "items[0].turn",
        "has 1 turn",
    ),
    (
        "turn zero",
        SINGLE_URL,
        {"items": [with_(MULTI_SINGLE, turn=0)]},
        "items[0].turn",
        "greater than or equal",
    ),
    (
        "problem in a later item",
        PAIRWISE,
        {"items": [PAIR, PAIR, with_(PAIR, answer_b=None)]},
        "items[2].answer_b",
        "answer_b",
    ),
]


@pytest.mark.parametrize(
    ("url", "body", "field", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_request_is_422_naming_the_field(
    client: TestClient, redis: Redis, url: str, body: dict[str, Any], field: str | None, fragment: str
) -> None:
    error = assert_error(client.post(url, json=body), 422, "validation_error", field)
    assert fragment in error["message"]
    # Nothing was recorded or enqueued.
    assert client.get("/v1/jobs").json()["jobs"] == []
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


def test_unknown_model_lists_the_registered_models(client: TestClient) -> None:
    error = assert_error(
        client.post(SINGLE_URL, json={"items": [SINGLE], "model": "llama"}), 422, "validation_error", "model"
    )
    assert error["message"] == f"unknown model 'llama' (registered models: {DEFAULT_MODEL})"


def test_several_problems_are_all_listed(client: TestClient) -> None:
    body = {"items": [with_(PAIR, answer_b=None)], "temperature": 9, "swap": "x"}
    error = assert_error(client.post(PAIRWISE, json=body), 422, "validation_error", "temperature")
    assert "more problem" in error["message"]
    assert {d["field"] for d in error["details"]} == {"temperature", "swap", "items[0].answer_b"}


@pytest.mark.parametrize("wait", ["-1", "3601", "soon", "nan"])
def test_wait_out_of_range(client: TestClient, redis: Redis, wait: str) -> None:
    response = client.post(PAIRWISE, params={"wait": wait}, json={"items": [PAIR]})
    assert_error(response, 422, "validation_error", "wait")
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


@pytest.mark.parametrize("url", [PAIRWISE, SINGLE_URL])
@pytest.mark.parametrize("raw", [b'{"items": [', b"{'items': []}", b'{"items": [] } trailing'])
def test_malformed_json_is_422(client: TestClient, url: str, raw: bytes) -> None:
    response = client.post(url, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert "JSON" in error["message"]


def test_malformed_json_names_no_array_index_as_field(client: TestClient) -> None:
    response = client.post(PAIRWISE, content=b'{"items": [', headers={"content-type": "application/json"})
    assert response.status_code == 422
    field = response.json()["error"].get("field")
    assert field is None or not field.startswith("["), field


@pytest.mark.parametrize(
    "url", [PAIRWISE, SINGLE_URL, "/v1/templates", "/v1/jobs/prompt-optimization", "/v1/jobs/self-reward"]
)
def test_a_body_that_is_not_utf8_is_422_saying_why(client: TestClient, url: str) -> None:
    # (found by the schemathesis fuzz: it was an undocumented 400 "There was an error parsing the body")
    response = client.post(url, content=b"\xc8H\xe9{\x02^", headers={"content-type": "application/json"})
    error = assert_error(response, 422, "validation_error", None)
    assert error["message"].startswith("the request body is not valid JSON: 'utf-8' codec can't decode")


@pytest.mark.parametrize(
    "url", [PAIRWISE, SINGLE_URL, "/v1/templates", "/v1/jobs/prompt-optimization", "/v1/jobs/self-reward"]
)
def test_a_request_without_a_body_is_422_saying_so(client: TestClient, url: str) -> None:
    error = assert_error(client.post(url), 422, "validation_error", None)
    assert error["message"].startswith("the request has no body; send a JSON object")


def _big_body(size: int) -> bytes:
    """A valid pairwise request of about ``size`` bytes."""
    body = json.dumps({"items": [with_(PAIR, answer_a="")]}).encode()
    return json.dumps({"items": [with_(PAIR, answer_a="x" * (size - len(body)))]}).encode()


LIMIT = 256 * 1024


@pytest.mark.parametrize("url", [PAIRWISE, SINGLE_URL])
def test_body_over_the_limit_with_content_length_is_413(client: TestClient, redis: Redis, url: str) -> None:
    body = _big_body(LIMIT + 1)
    assert len(body) == LIMIT + 1
    response = client.post(url, content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 413, "payload_too_large", None)
    assert str(LIMIT) in error["message"]
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


def test_declared_content_length_alone_is_enough_to_refuse(client: TestClient) -> None:
    # The middleware refuses on the header, before reading a byte of the body.
    response = client.post(
        PAIRWISE,
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(LIMIT + 1)},
    )
    assert_error(response, 413, "payload_too_large", None)


def test_body_at_the_limit_is_accepted(client: TestClient) -> None:
    body = _big_body(LIMIT)
    assert len(body) == LIMIT
    response = client.post(PAIRWISE, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_streamed_body_over_the_limit_is_413(client: TestClient, redis: Redis) -> None:
    response = client.post(
        PAIRWISE, content=_chunks(_big_body(LIMIT + 1)), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large", None)
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


def test_streamed_body_under_the_limit_is_accepted(client: TestClient) -> None:
    response = client.post(
        PAIRWISE, content=_chunks(_big_body(100_000)), headers={"content-type": "application/json"}
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("method", "path", "status", "type_"),
    [
        ("GET", "/v1/judgments/pairwise", 405, "method_not_allowed"),
        ("DELETE", "/v1/templates", 405, "method_not_allowed"),
        ("GET", "/v1/nothing-here", 404, "not_found"),
    ],
)
def test_routing_errors_use_the_error_body(
    client: TestClient, method: str, path: str, status: int, type_: str
) -> None:
    assert_error(client.request(method, path), status, type_, None)
