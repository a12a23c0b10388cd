"""`judge serve` with no settings: SQLite, in-process Redis, a worker process, the real model."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from app.engine.hardware import cpu_bf16
from tests.e2e.services import Service, free_port, spawn, stop, wait_ready

pytestmark = pytest.mark.e2e


def test_embedded_serve_judges_with_the_real_model(model_cache: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # Reuse the converted model instead of pulling it again.
    (data / "models").symlink_to(model_cache, target_is_directory=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JUDGE_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["JUDGE_DATA_DIR"] = str(data)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = spawn(["serve", "--port", str(port)], env, log)
    service = Service(f"http://127.0.0.1:{port}", [proc], [log])
    try:
        wait_ready(service)
        body = {
            "max_tokens": 16,
            "items": [{"question": "Is water wet?", "answer_a": "Yes.", "answer_b": "No."}],
        }
        url = f"{service.url}/v1/judgments/pairwise"
        assert httpx.post(url, json=body).status_code == 401  # every route but health needs a key
        # The first start made a development key, printed it and kept it in the data directory.
        key = (data / "dev-api-key").read_text().strip()
        assert key in service.output()
        headers = {"Authorization": f"Bearer {key}"}
        r = httpx.post(url, params={"wait": 300}, json=body, headers=headers, timeout=600)
        assert r.status_code == 200, f"{r.text}\n{service.output()}"
        [item] = r.json()["results"]
        assert [o["order"] for o in item["orders"]] == ["AB", "BA"]
        assert all(o["raw"].strip() for o in item["orders"])
        models = httpx.get(f"{service.url}/v1/models", headers=headers).json()["models"]
        assert [m["name"] for m in models] == ["SmolLM2-135M-Instruct"]
        # The worker reported the dtype JUDGE_DTYPE=auto picked on this machine's CPU.
        assert models[0]["dtype"] == cpu_bf16().dtype
        assert (data / "judge.sqlite3").exists()
    finally:
        stop([proc])
