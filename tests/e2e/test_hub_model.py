"""A model pulled from the Hugging Face Hub is served and judges: `judge models pull ORG/NAME` offline
from a Hub cache built from the default model, `judge worker --model ORG/NAME`, then a judgment that
names it, on the real API, Postgres and Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import DEFAULT_MODEL
from tests.conftest import TEST_E2E_REDIS_URL
from tests.e2e.services import free_port, make_stack, spawn, wait_ready
from tests.models.hub_cache import HUB_REPO, build_hub_cache

pytestmark = pytest.mark.e2e


def test_a_model_pulled_from_the_hub_judges(model_cache: Path, tmp_path: Path) -> None:
    snapshot = build_hub_cache(model_cache / DEFAULT_MODEL, tmp_path / "hub")
    hub_env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    stack = make_stack("judge_e2e_hub", TEST_E2E_REDIS_URL, model_cache, tmp_path / "logs", hub_env)
    try:
        pulled = stack.cli("models", "pull", HUB_REPO, "--quiet")
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stdout.strip() == f"{HUB_REPO} ready at {snapshot}"

        worker = spawn(["worker", "--model", HUB_REPO], stack.env, stack.logs / "worker.log")
        stack.procs.append(worker)
        service = stack.serve(free_port())
        service.procs.insert(0, worker)
        service.logs.insert(0, stack.logs / "worker.log")
        wait_ready(service)
        body = {
            "model": HUB_REPO,
            "max_tokens": 8,
            "items": [{"question": "What is 2 + 2?", "answer_a": "4", "answer_b": "5"}],
        }
        with service.client() as http:
            r = http.post("/v1/judgments/pairwise", params={"wait": 300}, json=body)
            assert r.status_code == 200, f"{r.text}\n{service.output()}"
            job = r.json()
            assert job["model"] == HUB_REPO and job["status"] == "succeeded"
            [item] = job["results"]
            assert [o["order"] for o in item["orders"]] == ["AB", "BA"]
            assert all(o["raw"].strip() for o in item["orders"])
            names = [m["name"] for m in http.get("/v1/models").json()["models"]]
            assert HUB_REPO in names
        assert f"loading model {HUB_REPO} (transformers backend) from {snapshot}" in service.output()
    finally:
        stack.close()
