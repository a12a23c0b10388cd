"""A jury end to end: `judge serve`, and a `judge worker` per judge's weights — the real default model
under its own name and under a second name (with another template; one engine serves both), and an
OpenAI-compatible judge served on loopback by a tiny fake server — judging one job together. The
same stack grades an item carrying its own rubric with the real model."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings
from app.core.db import Database
from app.models.registry import register
from tests.conftest import TEST_E2E_REDIS_URL
from tests.e2e.services import DEFAULT_MODEL, Service, free_port, make_stack, spawn, wait_ready

SECOND = "smol-second"
REMOTE = "remote-judge"
SECOND_TEMPLATE = {
    "name": "jury-terse",
    "mode": "pairwise",
    "system": "You compare two answers and name the better one.",
    "user": "Question: {question}\n\nAnswer A: {answer_a}\n\nAnswer B: {answer_b}\n\n"
    "Reply with [[A]] if A is better, [[B]] if B is better, [[C]] for a tie.",
    "response_prefix": "Verdict: [[",
}


class _FirstShownJudge(BaseHTTPRequestHandler):
    """/v1/chat/completions: always prefers the answer shown first (continues 'Verdict: [[' with 'A]]')."""

    requests: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        reply = {
            "id": "chatcmpl-jury",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "A]]"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FirstShownJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def jury_service(
    model_cache: Path, remote: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    stack = make_stack(
        "judge_e2e_jury",
        TEST_E2E_REDIS_URL,
        model_cache,
        tmp_path_factory.mktemp("jury-logs"),
        {"JUDGE_BATCH_SIZE": "8"},
    )
    db = Database(Settings(database_url=stack.db_url).sqlalchemy_url)
    with db.unit_of_work() as session:
        # The default model's folder under a second name: no worker of its own, the default model's
        # worker serves it with the engine it holds (same weights, same queue, shared batches).
        register(session, Settings(), SECOND, model_cache / DEFAULT_MODEL)
    db.dispose()
    service = stack.serve(free_port())
    stack.worker()
    remote_env = {**stack.env, "JUDGE_BACKEND": "openai", "JUDGE_OPENAI_BASE_URL": remote}
    stack.procs.append(spawn(["worker", "--model", REMOTE], remote_env, stack.logs / "remote.log"))
    service.logs.extend(stack.logs / f"{name}.log" for name in ("worker", "remote"))
    try:
        wait_ready(service)
        yield service
    finally:
        stack.close()


def test_a_jury_of_two_local_judges_and_a_remote_one(jury_service: Service) -> None:
    with jury_service.client() as http:
        assert http.post("/v1/templates", json=SECOND_TEMPLATE).status_code == 201
        # The remote worker registers its model as it starts.
        for _ in range(240):
            if REMOTE in [m["name"] for m in http.get("/v1/models").json()["models"]]:
                break
            threading.Event().wait(0.5)
        items = [
            {"question": "What is 2+2?", "answer_a": "2+2 equals 4.", "answer_b": "It is 5."},
            {
                "question": "Capital of France?",
                "answer_a": "Berlin.",
                "answer_b": "Paris is the capital of France.",
            },
        ]
        judges = [DEFAULT_MODEL, {"model": SECOND, "template": SECOND_TEMPLATE["name"]}, REMOTE]
        response = http.post(
            "/v1/judgments/pairwise",
            params={"wait": 240},
            json={"items": items, "judges": judges},
            timeout=300,
        )
        assert response.status_code == 200, jury_service.output() + response.text
        job = response.json()
        assert job["status"] == "succeeded", job
        assert job["model"] == f"jury: {DEFAULT_MODEL}, {SECOND}, {REMOTE}"
        for result in job["results"]:
            assert [j["model"] for j in result["judges"]] == [DEFAULT_MODEL, SECOND, REMOTE]
            # The remote judge always picks what it is shown first: A, then B after the swap: a tie.
            remote_result = result["judges"][2]
            assert [o["raw"] for o in remote_result["orders"]] == ["Verdict: [[A]]", "Verdict: [[A]]"]
            assert remote_result["verdict"] == "tie" and remote_result["consistent"] is False
            # Each local judge ran its own template.
            assert all(j["orders"] and j["status"] in ("ok", "error") for j in result["judges"][:2])
            given = [j["verdict"] for j in result["judges"] if j["verdict"] is not None]
            assert result["verdict"] in ("A", "B", "tie") and sum(result["votes"].values()) == len(given)
        # Both orders of both items reached the remote judge, with the second template's words only
        # in the second judge's prompts (not the remote's).
        assert len(_FirstShownJudge.requests) == 4
        assert all("name the better one" not in json.dumps(r) for r in _FirstShownJudge.requests)
        members = {j["job_id"] for j in job["results"][0]["judges"]}
        assert len(members) == 3 and job["id"] not in members
        assert [j["id"] for j in http.get("/v1/jobs").json()["jobs"]] == [job["id"]]
        summary = http.get(f"/v1/jobs/{job['id']}/summary").json()["jury"]
        assert [j["model"] for j in summary["judges"]] == [DEFAULT_MODEL, SECOND, REMOTE]
        assert summary["judges"][2]["first_position_rate"] == 1.0
        assert len(summary["cohen_kappa"]) == 3


def test_an_item_with_its_own_rubric_is_graded_by_the_real_model(jury_service: Service) -> None:
    rubric = {
        "criteria": "Does the answer state the correct sum of 2 and 2?",
        "descriptions": {
            "1": "No number, or an unrelated one.",
            "2": "A wrong number.",
            "3": "The right number buried in confusion.",
            "4": "The right number with a small slip.",
            "5": "The right number, stated plainly.",
        },
    }
    item = {"id": "r", "question": "What is 2+2?", "answer": "2+2 equals 4.", "rubric": rubric}
    with jury_service.client() as http:
        response = http.post(
            "/v1/judgments/single",
            params={"wait": 240},
            json={"items": [item], "scale": {"min": 1, "max": 5}, "cache": "off"},
            timeout=300,
        )
    assert response.status_code == 200, jury_service.output() + response.text
    job = response.json()
    result = job["results"][0]
    assert result["rubric"] == rubric
    assert result["orders"][0]["raw"].startswith("Rating: [[")
    if result["status"] == "ok":
        assert 1 <= result["score"] <= 5
    assert job["status"] == "succeeded" or result["status"] == "error"
