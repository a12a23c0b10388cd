"""API and worker as separate processes, Postgres and Redis, the real default model."""

from __future__ import annotations

import pytest

from tests.e2e.services import Service

pytestmark = pytest.mark.e2e

QUESTION = "What is the capital of France? Answer in one word."


def test_pairwise_with_conservative_swap(production_service: Service) -> None:
    body = {
        "swap": "conservative",
        "max_tokens": 24,
        "items": [
            {"id": "paris", "question": QUESTION, "answer_a": "Paris.", "answer_b": "Berlin."},
            {"id": "berlin", "question": QUESTION, "answer_a": "Berlin.", "answer_b": "Paris."},
        ],
    }
    with production_service.client() as client:
        r = client.post("/v1/judgments/pairwise", params={"wait": 300}, json=body)
        assert r.status_code == 200, f"{r.status_code} {r.text}\n{production_service.output()}"
        job = r.json()
        assert job["status"] == "succeeded"
        assert job["progress"] == {
            "done": 2,
            "total": 2,
            "failed": sum(r["status"] == "error" for r in job["results"]),
        }
        results = job["results"]
        assert [r["id"] for r in results] == ["paris", "berlin"]
        for item in results:
            # Both orders were judged and every raw output is kept.
            assert [o["order"] for o in item["orders"]] == ["AB", "BA"]
            assert all(o["raw"].strip() for o in item["orders"])
            assert all(o["tokens_out"] > 0 for o in item["orders"])
            if item["status"] == "ok":
                verdicts = {o["verdict"] for o in item["orders"]}
                assert item["consistent"] is (len(verdicts) == 1)
                assert item["verdict"] == (verdicts.pop() if item["consistent"] else "tie")
            else:
                assert item["error"] and item["verdict"] is None
        # The results endpoint serves the same stored results.
        page = client.get(f"/v1/jobs/{job['id']}/results").json()
        assert page["results"] == results


def test_single_grading_with_a_reference(production_service: Service) -> None:
    body = {
        "max_tokens": 24,
        "scale": {"min": 1, "max": 10},
        "items": [
            {"question": "What is 12 * 12?", "answer": "144", "reference": "12 * 12 = 144."},
            {"question": "What is 12 * 12?", "answer": "124", "reference": "12 * 12 = 144."},
        ],
    }
    with production_service.client() as client:
        r = client.post("/v1/judgments/single", params={"wait": 300}, json=body)
        assert r.status_code == 200, f"{r.status_code} {r.text}\n{production_service.output()}"
        job = r.json()
        assert job["status"] == "succeeded"
        for item in job["results"]:
            [order] = item["orders"]
            assert order["order"] == "single" and order["raw"].strip()
            if item["status"] == "ok":
                assert 1 <= item["score"] <= 10
            else:
                assert item["error"] and item["score"] is None


def test_auto_reference_is_generated_stored_and_returned(production_service: Service) -> None:
    body = {
        "max_tokens": 24,
        "reference": {"auto": True},
        "items": [{"question": "Name the largest planet of the solar system.", "answer": "Jupiter."}],
    }
    with production_service.client() as client:
        r = client.post("/v1/judgments/single", params={"wait": 300}, json=body)
        assert r.status_code == 200, r.text
        [item] = r.json()["results"]
        [reference] = item["generated_references"]
        assert reference.strip()
        assert item["orders"][0]["raw"].strip()


def test_probability_verdicts_with_the_real_model(production_service: Service) -> None:
    pair = {"question": QUESTION, "answer_a": "Paris.", "answer_b": "Berlin."}
    with production_service.client() as client:
        r = client.post(
            "/v1/judgments/pairwise",
            params={"wait": 300},
            json={"verdict_mode": "logprobs", "swap": "conservative", "items": [pair]},
        )
        assert r.status_code == 200, r.text
        [item] = r.json()["results"]
        assert item["status"] == "ok"
        assert sum(item["probabilities"].values()) == pytest.approx(1.0)
        # Conservative swap: a winner only when both orders' most likely labels agree, else a tie (the
        # default model's first-position bias usually makes them disagree).
        argmax = max(item["probabilities"], key=item["probabilities"].get)
        assert item["verdict"] == (argmax if item["consistent"] else "tie")
        for order in item["orders"]:
            assert order["raw"].startswith("P(A)=")
            assert set(order["probabilities"]) == {"A", "B", "tie"}

        r = client.post(
            "/v1/judgments/single",
            params={"wait": 300},
            json={"verdict_mode": "logprobs", "items": [{"question": "What is 2 + 2?", "answer": "4"}]},
        )
        assert r.status_code == 200, r.text
        [item] = r.json()["results"]
        assert set(item["probabilities"]) == {str(s) for s in range(1, 11)}
        assert 1 <= item["expected_score"] <= 10
        assert item["score"] in range(1, 11)
