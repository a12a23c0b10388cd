"""A self-reward job through the API with the real default model: SFT, one DPO iteration, the new
model registered with its lineage, and then serving a judging request."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from app.core.config import Settings
from app.self_reward.seed_data import eft_examples, ift_examples
from tests.e2e.services import Service

pytestmark = pytest.mark.e2e


def _eft_by_score(split: str, per_score: int) -> list[dict[str, Any]]:
    picked: dict[int, list[dict[str, Any]]] = {}
    for e in eft_examples(split):  # type: ignore[arg-type]
        group = picked.setdefault(e.score, [])
        if len(group) < per_score:
            group.append(
                {"prompt": e.prompt, "response": e.response, "judgment": e.judgment, "score": e.score}
            )
    return [row for score in sorted(picked) for row in picked[score]]


def _weights(path: str) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(Path(path).glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    return tensors


def _wait(client: Any, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(2.0)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


@pytest.mark.timeout(1800)
def test_sft_and_one_dpo_iteration_end_to_end(production_service: Service) -> None:
    # 16 of the shipped IFT examples and all 48 EFT ones (the rubric prompt makes each ~800 tokens: they
    # are most of the SFT's cost on a CPU, and what teaches the model to end its judgments with a score),
    # 2 held-out EFT examples of each score.
    body = {
        "ift": {"rows": [{"prompt": e.prompt, "response": e.response} for e in ift_examples()[:16]]},
        "eft_heldout": {"rows": _eft_by_score("heldout", 2)},
        "iterations": 1,
        "prompts_per_iteration": 4,
        "instruct": {"max_tokens": 96},
        "candidates": {"n": 4, "max_tokens": 192},
        "judge": {"samples": 2, "max_tokens": 160},
        # The rubric prompt is long: EFT examples need ~800 tokens (TRL drops longer ones).
        "sft": {"learning_rate": 2e-4, "epochs": 1, "batch_size": 8, "max_length": 896},
        "dpo": {"learning_rate": 5e-5, "epochs": 3, "batch_size": 2, "max_length": 512},
        "evaluation": {"heldout_prompts": 2, "max_tokens": 48},
        # A 135M model is a poor judge of itself: let the loop go on with whatever pairs it finds.
        "guards": {"min_pairs": 1, "max_parse_failure_rate": 1.0, "max_tie_rate": 1.0},
        "seed": 3,
    }
    with production_service.client() as client:
        r = client.post("/v1/jobs/self-reward", json=body)
        assert r.status_code == 202, r.text
        try:
            _check_run(client, _wait(client, r.json()["id"], timeout=1500), production_service)
        finally:
            # Trained checkpoints are ~0.5 GB each: keep the shared models folder from filling up.
            for path in models_dir_entries(r.json()["id"]):
                shutil.rmtree(path, ignore_errors=True)


def models_dir_entries(job_id: str) -> list[Path]:
    return list(Settings().models_dir.glob(f"*-sr-{uuid.UUID(job_id).hex[:8]}-m*"))


def _check_run(client: Any, job: dict[str, Any], production_service: Service) -> None:
    """The job succeeded, trained and registered a model that differs from its parent, and serves."""
    assert job["status"] == "succeeded", (
        f"{job['status']}: {job['error']} (stage {job['stage']})\n{production_service.output()[-3000:]}"
    )
    out = client.get(f"/v1/jobs/{job['id']}/results").json()
    assert [i["iteration"] for i in out["iterations"]] == [0, 1]
    sft, dpo = out["iterations"]
    assert dpo["metrics"]["pairs"]["kept"] >= 1
    training = dpo["metrics"]["training"]
    assert training["last_loss"] < training["first_loss"], training  # DPO's loss fell over the run
    assert "eft_heldout" in dpo["metrics"]["evaluation"]

    model = client.get(f"/v1/models/{dpo['model_id']}").json()
    assert model["name"] == out["final_model"]
    assert [m["name"] for m in model["lineage"]] == [sft["model"], "SmolLM2-135M-Instruct"]
    assert model["artifact_path"] is None  # the tenant's key is not shown the server's folders
    with production_service.client(operator=True) as operator:
        model = operator.get(f"/v1/models/{dpo['model_id']}").json()
        parent = operator.get(f"/v1/models/{sft['model_id']}").json()
    new, old = _weights(model["artifact_path"]), _weights(parent["artifact_path"])
    assert new.keys() == old.keys()
    assert any(not torch.equal(new[k], old[k]) for k in new)  # the weights moved

    judged = client.post(
        "/v1/judgments/pairwise",
        params={"wait": 300},
        json={
            "model": dpo["model_id"],
            "swap": "conservative",
            "max_tokens": 16,
            "items": [{"question": "What is 2 + 2?", "answer_a": "4", "answer_b": "5"}],
        },
    )
    assert judged.status_code == 200, judged.text
    assert judged.json()["model"] == out["final_model"]
    assert judged.json()["status"] == "succeeded"
