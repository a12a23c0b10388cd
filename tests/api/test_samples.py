"""`samples` requests (self-consistency): what is refused, and what is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from tests.api.helpers import DEFAULT_QUEUE, PAIR, PAIRWISE, SINGLE, SINGLE_URL, assert_error

SAMPLED = {"temperature": 0.7}

# (id, endpoint, body, fragment of the message)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("zero", PAIRWISE, {"items": [PAIR], "samples": 0, **SAMPLED}, "greater than or equal to 1"),
    ("greedy", PAIRWISE, {"items": [PAIR], "samples": 3}, "with temperature 0 (greedy)"),
    ("greedy single", SINGLE_URL, {"items": [SINGLE], "samples": 2, "temperature": 0}, "greedy"),
    ("over the cap", PAIRWISE, {"items": [PAIR], "samples": 11, **SAMPLED}, "samples must be at most 10"),
    (
        "logprobs",
        PAIRWISE,
        {"items": [PAIR], "samples": 2, "verdict_mode": "logprobs", **SAMPLED},
        "exactly in one forward pass",
    ),
]


@pytest.mark.parametrize(("url", "body", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unusable_samples_are_422_naming_the_field(
    client: TestClient, redis: Redis, url: str, body: dict[str, Any], fragment: str
) -> None:
    error = assert_error(client.post(url, json=body), 422, "validation_error", "samples")
    assert fragment in error["message"]
    assert Queue(DEFAULT_QUEUE, connection=redis).job_ids == []


def test_samples_are_recorded_and_one_is_left_out(client: TestClient) -> None:
    sampled = client.post(SINGLE_URL, json={"items": [SINGLE], "samples": 10, "cot": True, **SAMPLED})
    assert sampled.status_code == 202, sampled.text
    assert sampled.json()["params"]["samples"] == 10
    # One sample per order is the default; its jobs record params as before.
    plain = client.post(PAIRWISE, json={"items": [PAIR], "samples": 1, "verdict_mode": "logprobs"})
    assert plain.status_code == 202, plain.text
    assert "samples" not in plain.json()["params"]
