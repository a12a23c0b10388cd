"""A prompt-optimization job through the API with the real default model, Postgres, Redis and a
worker process, on the review dataset the project ships."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from app.datasets.builtin import builtin_split
from tests.e2e.services import Service

pytestmark = pytest.mark.e2e

INITIAL = (
    "# Task\nRead the customer review and decide whether the customer is happy with what they got.\n\n"
    "# Output format\nAnswer with exactly one word: positive or negative.\n\n"
    "# Prediction\nReview: {text}\nAnswer:"
)


def _upload(client: Any, split: str) -> str:
    lines = "\n".join(json.dumps(row) for row in builtin_split("reviews", split))
    r = client.post(
        "/v1/datasets",
        params={"name": f"reviews-{split}"},
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _wait(client: Any, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen_running = None
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running" and job.get("detail"):
            seen_running = job
        if job["status"] in ("succeeded", "failed", "cancelled"):
            job["seen_running"] = seen_running
            return dict(job)
        time.sleep(1.0)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


def test_prompt_optimization_job_runs_end_to_end(production_service: Service) -> None:
    with production_service.client() as client:
        ids = {split: _upload(client, split) for split in ("train", "dev", "test")}
        body = {
            "task_description": "Sentiment of short product and service reviews.",
            "labels": ["positive", "negative"],
            "initial_prompt": INITIAL,
            "data": {split: {"dataset_id": ids[split]} for split in ids},
            "hyperparameters": {
                "rounds": 1,
                "beam_size": 2,
                "minibatch_size": 16,
                "n_gradients": 2,
                "errors_per_gradient": 3,
                "mc_samples": 1,
                "max_expansion": 3,
                "selector": {"eval_rounds": 2, "prompts_per_round": 3, "samples_per_eval": 8},
            },
            "task_decoding": {"mode": "logprobs"},
            "optimizer_decoding": {"temperature": 0.7, "max_tokens": 120},
            "budget": {"max_calls": 2000},
            "seed": 1,
        }
        estimate = client.post("/v1/jobs/prompt-optimization", json={**body, "dry_run": True})
        assert estimate.status_code == 200, estimate.text
        projected = estimate.json()["projection"]
        assert projected["fits_budget"] is True

        r = client.post("/v1/jobs/prompt-optimization", json=body)
        assert r.status_code == 202, f"{r.text}\n{production_service.output()}"
        job = _wait(client, r.json()["id"], timeout=600)
        assert job["status"] == "succeeded", f"{job}\n{production_service.output()}"
        assert job["progress"] == {"done": 1, "total": 1, "failed": 0}

        out = client.get(f"/v1/jobs/{job['id']}/results").json()
        assert out["stop_reason"] == "rounds"
        assert out["best_prompt"]
        for split, n in (("dev", 24), ("test", 40)):
            for which in ("initial", "best"):
                report = out["evaluation"][split][which]
                assert report["n"] == n
                assert 0.0 <= report["accuracy"] <= 1.0
        assert [r["round"] for r in out["rounds"]] == [1]
        assert out["candidates"][0]["key"] == "r0c0"
        assert out["usage"]["calls"] <= projected["calls"]
        assert job["detail"]["usage"]["calls"] == out["usage"]["calls"]
        # Every candidate the search kept still carries the fixed output format and the example slot.
        for c in out["candidates"]:
            if not c["rejected"]:
                assert c["text"].endswith(INITIAL.split("# Task", 1)[1].split("\n\n", 1)[1])
        print(
            "prompt optimization e2e:",
            json.dumps({k: out["evaluation"]["test"][k]["accuracy"] for k in ("initial", "best")}),
            json.dumps(out["usage"]),
        )
