"""Request bodies and assertions shared by the API tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import httpx2  # what starlette's TestClient answers with

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
DEFAULT_QUEUE = "judge.SmolLM2-135M-Instruct"

PAIR: dict[str, Any] = {"question": "What is 2+2?", "answer_a": "4", "answer_b": "five"}
SINGLE: dict[str, Any] = {"question": "What is 2+2?", "answer": "4"}
MULTI_PAIR: dict[str, Any] = {
    "turns": ["Name a prime.", "Name a bigger one."],
    "answers_a": ["2", "3"],
    "answers_b": ["4", "9"],
}
MULTI_SINGLE: dict[str, Any] = {"turns": ["Name a prime.", "Name a bigger one."], "answers": ["2", "3"]}

PAIRWISE = "/v1/judgments/pairwise"
SINGLE_URL = "/v1/judgments/single"


def endpoint(mode: str) -> str:
    return PAIRWISE if mode == "pairwise" else SINGLE_URL


def with_(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``item`` with ``changes`` applied; a change to ``None`` removes the key."""
    out = {**item, **changes}
    return {k: v for k, v in out.items() if v is not None}


def assert_error(
    response: httpx.Response | httpx2.Response, status: int, type_: str, field: str | None
) -> dict[str, Any]:
    """The one error shape: ``{"error": {"type", "message", "field"?}}``; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"type", "message", "field", "details"}, error
    assert error["type"] == type_, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error.get("field") == field, error
    return dict(error)
