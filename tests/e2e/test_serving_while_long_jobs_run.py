"""Judging goes on while long jobs run, and cancel reaches every level within seconds: real API and
worker processes, the real model, Postgres and Redis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from app.self_reward.seed_data import ift_examples
from tests.e2e.services import Service

pytestmark = pytest.mark.e2e

PAIR = {"question": "What is the capital of France?", "answer_a": "Paris.", "answer_b": "Berlin."}
# (Its requests say `cache: "off"`: the worker must judge them, not the verdict cache answer them.)


def _job(client: Any, job_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/jobs/{job_id}").json())


def _until(client: Any, job_id: str, done: Any, timeout: float, every: float = 0.2) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(client, job_id)
        if done(job):
            return job
        time.sleep(every)
    raise AssertionError(f"job {job_id} never got there: {_job(client, job_id)}")


def _training_children(service: Service) -> list[int]:
    """Training processes started by `judge trainer` (children of the trainer process, the stack's
    last; never of the worker, which serves judgments)."""
    trainer = service.procs[-1].pid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == trainer and b"app.training" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(900)
def test_a_judgment_is_served_during_sft_and_cancel_stops_the_training(production_service: Service) -> None:
    body = {
        "ift": {"rows": [{"prompt": e.prompt, "response": e.response} for e in ift_examples()[:16]]},
        "iterations": 1,
        "prompts_per_iteration": 4,
        "sft": {"epochs": 10, "batch_size": 1, "max_length": 512},
        "seed": 1,
    }
    with production_service.client() as client:
        r = client.post("/v1/jobs/self-reward", json=body)
        assert r.status_code == 202, r.text
        sr = r.json()["id"]
        _until(
            client, sr, lambda j: j["stage"] == "sft: train" and _training_children(production_service), 300
        )

        started = time.monotonic()
        judged = client.post(
            "/v1/judgments/pairwise",
            params={"wait": 120},
            json={"max_tokens": 16, "cache": "off", "items": [PAIR]},
        )
        assert judged.status_code == 200, judged.text
        assert judged.json()["status"] == "succeeded"
        assert time.monotonic() - started < 60  # not after the training

        asked = time.monotonic()
        assert client.post(f"/v1/jobs/{sr}/cancel").status_code in (200, 202)
        job = _job(client, sr)
        assert job["cancel_requested_at"] is not None or job["status"] == "cancelled"
        ended = _until(client, sr, lambda j: j["status"] in ("cancelled", "failed", "succeeded"), 30)
        assert ended["status"] == "cancelled", ended
        assert time.monotonic() - asked <= 15
        deadline = time.monotonic() + 10
        while _training_children(production_service) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _training_children(production_service) == []


@pytest.mark.timeout(600)
def test_cancelling_a_judging_job_mid_batch_stops_it_within_seconds(production_service: Service) -> None:
    items = [{**PAIR, "question": f"Explain, step by step, why {i} + {i} = {2 * i}."} for i in range(16)]
    with production_service.client() as client:
        r = client.post("/v1/judgments/pairwise", json={"cot": True, "max_tokens": 384, "items": items})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        _until(client, job_id, lambda j: j["status"] == "running", 120)
        time.sleep(2.0)  # mid-batch
        asked = time.monotonic()
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code in (200, 202)
        assert _job(client, job_id)["cancel_requested_at"] is not None
        ended = _until(client, job_id, lambda j: j["status"] != "running", 30)
        assert ended["status"] == "cancelled", ended
        assert time.monotonic() - asked <= 10
        assert ended["progress"]["done"] < 16

        # The worker goes on serving.
        judged = client.post(
            "/v1/judgments/pairwise",
            params={"wait": 120},
            json={"max_tokens": 16, "cache": "off", "items": [PAIR]},
        )
        assert judged.status_code == 200 and judged.json()["status"] == "succeeded", judged.text
