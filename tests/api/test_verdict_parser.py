"""`parser` on judging requests: recorded with the job (the worker reads verdicts with it), left out at
its default, and shown on templates."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.judging.params import JudgingParams
from tests.api.helpers import PAIR, PAIRWISE, SINGLE, SINGLE_URL, assert_error


def test_a_request_names_the_fastchat_parser(client: TestClient) -> None:
    for url, item in ((PAIRWISE, PAIR), (SINGLE_URL, SINGLE)):
        response = client.post(url, json={"items": [item], "parser": "fastchat"})
        assert response.status_code == 202, response.text
        params = response.json()["params"]
        assert params["parser"] == "fastchat"
        # What the worker re-validates and judges with (the API shows params without the template snapshot).
        assert JudgingParams.model_validate({**params, "templates": {}}).options().parser == "fastchat"


def test_strict_is_the_default_and_recorded_as_before(client: TestClient) -> None:
    for body in ({"items": [PAIR]}, {"items": [PAIR], "parser": "strict"}):
        params = client.post(PAIRWISE, json=body).json()["params"]
        # Jobs recorded before parsers had no key, and read as strict.
        assert "parser" not in params
        assert JudgingParams.model_validate({**params, "templates": {}}).options().parser == "strict"


def test_an_unknown_parser_is_refused(client: TestClient) -> None:
    response = client.post(PAIRWISE, json={"items": [PAIR], "parser": "lenient"})
    assert_error(response, 422, "validation_error", "parser")


def test_templates_show_their_parser(client: TestClient) -> None:
    templates = client.get("/v1/templates").json()["templates"]
    assert templates and all(t["parser"] == "strict" for t in templates)


def test_a_registered_template_carries_its_parser_to_the_jobs_that_use_it(client: TestClient) -> None:
    """A FastChat-style template registered with `parser: fastchat` is read with FastChat's rules
    whenever a request names no parser (the request's own `parser` still wins)."""
    user = "Question: {question}\nA: {answer_a}\nB: {answer_b}\nReply [[A]], [[B]] or [[C]]."
    for name, parser in (("fc-judge", "fastchat"), ("plain-judge", None)):
        body = {"name": name, "mode": "pairwise", "user": user} | ({"parser": parser} if parser else {})
        registered = client.post("/v1/templates", json=body)
        assert registered.status_code == 201, registered.text
        assert registered.json()["parser"] == (parser or "strict")
    listed = {t["name"]: t["parser"] for t in client.get("/v1/templates").json()["templates"]}
    assert listed["fc-judge"] == "fastchat" and listed["plain-judge"] == "strict"

    def recorded(template: str, **extra: str) -> str:
        response = client.post(PAIRWISE, json={"items": [PAIR], "template": template, **extra})
        assert response.status_code == 202, response.text
        return str(response.json()["params"].get("parser", "strict"))

    assert recorded("fc-judge") == "fastchat"
    assert recorded("plain-judge") == "strict"
    assert recorded("fc-judge", parser="strict") == "strict"


def test_an_unknown_template_parser_is_refused(client: TestClient) -> None:
    user = "{question} {answer_a} {answer_b}"
    body = {"name": "bad-judge", "mode": "pairwise", "user": user, "parser": "x"}
    assert_error(client.post("/v1/templates", json=body), 422, "validation_error", "parser")
