"""The template catalogue over HTTP: built-ins, registration, versions and placeholder checks."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import assert_error

BUILTINS = {
    f"{mode}{multi}{ref}{cot}"
    for mode in ("pairwise", "single")
    for multi in ("", "-multi")
    for ref in ("", "-ref")
    for cot in ("", "-cot")
} | {"single-rubric", "single-rubric-ref"}

PAIRWISE_USER = "Question: {question}\nA: {answer_a}\nB: {answer_b}\nReply [[A]], [[B]] or [[C]]."


def _register(client: TestClient, **fields: Any) -> Any:
    body = {"name": "my-judge", "mode": "pairwise", "user": PAIRWISE_USER} | fields
    return client.post("/v1/templates", json=body)


def _templates(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/templates")
    assert response.status_code == 200, response.text
    return list(response.json()["templates"])


def test_builtins_are_listed(client: TestClient) -> None:
    templates = _templates(client)
    assert len(BUILTINS) == 18
    assert {t["name"] for t in templates} == BUILTINS
    by_name = {t["name"]: t for t in templates}
    for name, t in by_name.items():
        assert (t["builtin"], t["version"]) == (True, 1), name
        assert t["mode"] == name.split("-")[0]
        assert (t["multi_turn"], t["reference"], t["cot"]) == (
            "-multi" in name,
            "-ref" in name,
            "-cot" in name,
        )
        assert t["user"] and t["placeholders"] == sorted(t["placeholders"])
        # Non-cot built-ins open the reply in the verdict format; cot ones let the judge reason first.
        opening = "" if t["cot"] else ("Verdict: [[" if t["mode"] == "pairwise" else "Rating: [[")
        assert t["response_prefix"] == opening, name
    assert {"question", "answer_a", "answer_b"} <= set(by_name["pairwise"]["placeholders"])
    assert {"conversation_a", "conversation_b", "reference"} <= set(
        by_name["pairwise-multi-ref"]["placeholders"]
    )
    assert {"answer", "scale_min", "scale_max"} <= set(by_name["single"]["placeholders"])


def test_register_a_template(client: TestClient) -> None:
    response = _register(
        client, system="You judge {question} fairly.", description="house style", response_prefix="Winner: [["
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "name": "my-judge",
        "version": 1,
        "mode": "pairwise",
        "multi_turn": False,
        "reference": False,
        "cot": False,
        "builtin": False,
        "system": "You judge {question} fairly.",
        "user": PAIRWISE_USER,
        "response_prefix": "Winner: [[",
        # A registered template reads verdicts strictly (no column keeps another parser yet).
        "parser": "strict",
        "placeholders": ["answer_a", "answer_b", "question"],
        "description": "house style",
    }
    listed = [t for t in _templates(client) if not t["builtin"]]
    assert listed == [response.json()]


def test_re_registering_adds_a_version(client: TestClient) -> None:
    first = _register(client).json()
    second = _register(client, user=PAIRWISE_USER + " Be brief.").json()
    assert (first["version"], second["version"]) == (1, 2)
    assert _register(client, name="other").json()["version"] == 1
    custom = [(t["name"], t["version"], t["user"]) for t in _templates(client) if not t["builtin"]]
    assert custom == [
        ("my-judge", 1, PAIRWISE_USER),
        ("my-judge", 2, PAIRWISE_USER + " Be brief."),
        ("other", 1, PAIRWISE_USER),
    ]


# (id, fields, placeholders listed)
VALID = [
    ("pairwise", {}, ["answer_a", "answer_b", "question"]),
    (
        "single with scale",
        {"mode": "single", "user": "{question}\n{answer}\nScore {scale_min}-{scale_max}: [[n]]"},
        ["answer", "question", "scale_max", "scale_min"],
    ),
    (
        "pairwise multi-turn",
        {"multi_turn": True, "user": "{conversation_a}\n{conversation_b}\nJudge turn {turn}."},
        ["conversation_a", "conversation_b", "turn"],
    ),
    (
        "single multi-turn reference",
        {"mode": "single", "multi_turn": True, "reference": True, "user": "{conversation}\nRef: {reference}"},
        ["conversation", "reference"],
    ),
    (
        "required placeholders split over system and user",
        {"system": "Q: {question}", "user": "{answer_a} vs {answer_b}", "cot": True},
        ["answer_a", "answer_b", "question"],
    ),
    (
        "literal braces",
        {"user": PAIRWISE_USER + ' Output {{"winner": "A"}}.'},
        ["answer_a", "answer_b", "question"],
    ),
    ("dotted name", {"name": "team.judge_v2-beta"}, ["answer_a", "answer_b", "question"]),
    ("one-line response prefix", {"response_prefix": "Verdict:\n[["}, ["answer_a", "answer_b", "question"]),
    (
        "braces in the response prefix are text",
        {"response_prefix": "{foo} [["},
        ["answer_a", "answer_b", "question"],
    ),
]


@pytest.mark.parametrize(("fields", "placeholders"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_templates(client: TestClient, fields: dict[str, Any], placeholders: list[str]) -> None:
    response = _register(client, **fields)
    assert response.status_code == 201, response.text
    assert response.json()["placeholders"] == placeholders


@pytest.mark.parametrize("name", ["pairwise", "single-multi-ref-cot", "pairwise-cot"])
def test_builtin_name_is_409(client: TestClient, name: str) -> None:
    error = assert_error(_register(client, name=name), 409, "conflict", "name")
    assert "built-in" in error["message"]


# (id, fields, field, fragment of the message)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown placeholder", {"user": PAIRWISE_USER + " {foo}"}, "user", "unknown placeholder(s) {foo}"),
    ("unknown placeholder in system", {"system": "Hi {name}"}, "system", "{name}"),
    (
        "multi-turn placeholder in a single-turn template",
        {"user": PAIRWISE_USER + " {conversation_a}"},
        "user",
        "{conversation_a}",
    ),
    (
        "reference in a template without reference",
        {"user": PAIRWISE_USER + " {reference}"},
        "user",
        "{reference}",
    ),
    ("scale in a pairwise template", {"user": PAIRWISE_USER + " {scale_max}"}, "user", "{scale_max}"),
    (
        "answer_a in a single template",
        {"mode": "single", "user": "{question} {answer} {answer_a}"},
        "user",
        "{answer_a}",
    ),
    ("positional field", {"user": PAIRWISE_USER + " {}"}, "user", "positional field {}"),
    ("numbered field", {"user": PAIRWISE_USER + " {0}"}, "user", "positional field {0}"),
    ("attribute access", {"user": PAIRWISE_USER + " {question.upper}"}, "user", "not a plain placeholder"),
    ("index access", {"user": PAIRWISE_USER + " {answer_a[0]}"}, "user", "not a plain placeholder"),
    ("format spec", {"user": PAIRWISE_USER + " {question:>10}"}, "user", "format spec"),
    ("conversion", {"user": PAIRWISE_USER + " {question!r}"}, "user", "conversion"),
    ("unbalanced brace", {"user": PAIRWISE_USER + " {question"}, "user", "malformed template"),
    ("stray closing brace", {"system": "oops }"}, "system", "malformed template"),
    # Required placeholders.
    ("missing answer_b", {"user": "{question} {answer_a}"}, "user", "must use {answer_b}"),
    ("missing question", {"user": "{answer_a} {answer_b}"}, "user", "must use {question}"),
    ("missing answer", {"mode": "single", "user": "{question}"}, "user", "must use {answer}"),
    ("missing reference", {"reference": True}, "user", "must use {reference}"),
    (
        "missing conversation_b",
        {"multi_turn": True, "user": "{conversation_a}"},
        "user",
        "multi-turn pairwise template must use {conversation_b}",
    ),
    ("whitespace-only user", {"user": "   "}, "user", "must not be empty"),
    (
        "blank line in the response prefix",
        {"response_prefix": "Think.\n\nVerdict: [["},
        "response_prefix",
        "blank",
    ),
    # Schema.
    ("response prefix too long", {"response_prefix": "x" * 201}, "response_prefix", "at most 200"),
    ("empty user", {"user": ""}, "user", "at least 1"),
    ("bad mode", {"mode": "ranking"}, "mode", "pairwise"),
    ("upper case name", {"name": "MyJudge"}, "name", "pattern"),
    ("name starting with a dash", {"name": "-judge"}, "name", "pattern"),
    ("name with a space", {"name": "my judge"}, "name", "pattern"),
    ("name with a version", {"name": "my-judge@2"}, "name", "pattern"),
    ("name too long", {"name": "j" * 65}, "name", "pattern"),
    ("empty name", {"name": ""}, "name", "pattern"),
    ("unknown field", {"version": 3}, "version", "not permitted"),
]


@pytest.mark.parametrize(
    ("fields", "field", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_template_is_422(
    client: TestClient, fields: dict[str, Any], field: str, fragment: str
) -> None:
    error = assert_error(_register(client, **fields), 422, "validation_error", field)
    assert fragment in error["message"]
    assert [t for t in _templates(client) if not t["builtin"]] == []


def test_missing_required_fields(client: TestClient) -> None:
    error = assert_error(client.post("/v1/templates", json={}), 422, "validation_error", "name")
    assert {d["field"] for d in error["details"]} == {"name", "mode", "user"}
