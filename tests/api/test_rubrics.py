"""Per-item rubrics (prometheus-eval style): what is refused, and a graded item whose prompt shows its
rubric and whose result keeps it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.engine.base import Conversation
from tests.api.helpers import MULTI_SINGLE, PAIR, PAIRWISE, SINGLE, SINGLE_URL, assert_error
from tests.workers.conftest import user_text
from workers.tasks import run_job

RUBRIC: dict[str, Any] = {
    "criteria": "Does the answer give the correct sum?",
    "descriptions": {
        "1": "No number, or an unrelated one.",
        "2": "A wrong number with no working.",
        "3": "A wrong number with some correct working.",
        "4": "The correct number with a small slip in the wording.",
        "5": "The correct number, stated plainly.",
    },
}
FIVE = {"min": 1, "max": 5}
RUBRIC_ITEM = {**SINGLE, "rubric": RUBRIC}

# (id, endpoint, body, field, fragment of the message)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    (
        "default scale",
        SINGLE_URL,
        {"items": [RUBRIC_ITEM]},
        "items[0].rubric",
        "scale 1 to 10 (1, 2, 3, 4, 5, 6, 7, 8, 9, 10): missing 6, 7, 8, 9, 10",
    ),
    (
        "a score undescribed",
        SINGLE_URL,
        {
            "items": [{**SINGLE, "rubric": {**RUBRIC, "descriptions": {**RUBRIC["descriptions"], "9": "x"}}}],
            "scale": FIVE,
        },
        "items[0].rubric",
        "not on the scale: 9",
    ),
    (
        "fractional scale",
        SINGLE_URL,
        {"items": [RUBRIC_ITEM], "scale": {"min": 0.5, "max": 5}},
        "items[0].rubric",
        "whole numbers",
    ),
    ("cot", SINGLE_URL, {"items": [RUBRIC_ITEM], "scale": FIVE, "cot": True}, "cot", "score only"),
    (
        "multi-turn",
        SINGLE_URL,
        {"items": [{**MULTI_SINGLE, "rubric": RUBRIC}], "scale": FIVE},
        "items[0].rubric",
        "single-turn items",
    ),
    (
        "template without it",
        SINGLE_URL,
        {"items": [RUBRIC_ITEM], "scale": FIVE, "template": "single"},
        "items[0]",
        "does not show it ({rubric})",
    ),
    (
        "rubric template, no rubric",
        SINGLE_URL,
        {"items": [SINGLE], "scale": FIVE, "template": "single-rubric"},
        "items[0]",
        "has no `rubric`",
    ),
    (
        "no criteria",
        SINGLE_URL,
        {"items": [{**SINGLE, "rubric": {"descriptions": RUBRIC["descriptions"]}}], "scale": FIVE},
        "items[0].rubric.criteria",
        "Field required",
    ),
]


@pytest.mark.parametrize(
    ("url", "body", "field", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_unusable_rubrics_are_422_naming_the_field(
    client: TestClient, url: str, body: dict[str, Any], field: str, fragment: str
) -> None:
    error = assert_error(client.post(url, json=body), 422, "validation_error", field)
    assert fragment in error["message"], error


def test_a_pairwise_item_takes_no_rubric(client: TestClient) -> None:
    response = client.post(PAIRWISE, json={"items": [{**PAIR, "rubric": RUBRIC}]})
    assert response.status_code == 422
    assert response.json()["error"]["field"].endswith("rubric")


def test_a_rubric_item_is_graded_with_its_rubric_and_keeps_it(client: TestClient, worker: Any) -> None:
    seen: list[str] = []

    def grader(conv: Conversation) -> str:
        seen.append(user_text(conv))
        return "5]]"

    worker(grader)
    plain = {**SINGLE, "answer": "four"}
    created = client.post(SINGLE_URL, json={"items": [RUBRIC_ITEM, plain], "scale": FIVE})
    assert created.status_code == 202, created.text
    assert run_job(created.json()["id"]) == "done"
    results = client.get(f"/v1/jobs/{created.json()['id']}/results").json()["results"]
    assert [r["score"] for r in results] == [5, 5]
    assert results[0]["rubric"] == RUBRIC and results[1]["rubric"] is None
    rubric_prompt, plain_prompt = sorted(seen, key=lambda text: "=== Rubric ===" not in text)
    assert "Criteria: Does the answer give the correct sum?" in rubric_prompt
    assert "Score 1: No number, or an unrelated one.\nScore 2:" in rubric_prompt
    assert "Score 5: The correct number, stated plainly." in rubric_prompt
    assert "Rubric" not in plain_prompt
    assert results[0]["orders"][0]["raw"] == "Rating: [[5]]"
    # The rubric is part of the item's verdict-cache identity: another rubric is another call.
    other = {**SINGLE, "rubric": {**RUBRIC, "criteria": "Is the answer polite?"}}
    again = client.post(SINGLE_URL, json={"items": [RUBRIC_ITEM, other], "scale": FIVE}).json()
    assert again["status"] == "queued"
    assert run_job(again["id"]) == "done"
    cached = [r["cached"] for r in client.get(f"/v1/jobs/{again['id']}/results").json()["results"]]
    assert cached == [True, False]
