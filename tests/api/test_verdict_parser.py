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
