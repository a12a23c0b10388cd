"""Retries against a real local HTTP server that answers from a script (503 with Retry-After, 429,
dropped connections ...), sync and async."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from judge_client import (
    AsyncJudge,
    Judge,
    JudgeError,
    RateLimited,
    ServerError,
    Unavailable,
)

JOB: dict[str, Any] = {
    "id": "0f8fad5b-d9cb-469f-a165-707c867289a0",
    "kind": "judge_pairwise",
    "status": "queued",
    "model": "m",
    "progress": {"done": 0, "total": 1},
    "params": {},
    "created_at": "2025-01-01T00:00:00Z",
}
ITEM = {"question": "q", "answer_a": "a", "answer_b": "b"}


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class ScriptedServer:
    """Answers requests in order from ``script``; records what it received."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.seen.append(
                    Seen(self.command, self.path, dict(self.headers.items()), body, time.monotonic())
                )
                answer = (
                    outer.script.pop(0) if outer.script else Answer(500, {"error": {"message": "no script"}})
                )
                if answer.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.close()


def _error(message: str) -> dict[str, Any]:
    return {"error": {"type": "unavailable", "message": message}}


def test_503_with_retry_after_is_retried_with_the_same_idempotency_key(server: ScriptedServer) -> None:
    server.script = [
        Answer(503, _error("the database is unreachable"), {"Retry-After": "1"}),
        Answer(202, JOB),
    ]
    with Judge(server.url, "k", retries=3) as judge:
        job = judge.submit_batch([ITEM], swap="none")
    assert job.id == JOB["id"]
    first, second = server.seen
    assert (first.method, first.path, second.path) == (
        "POST",
        "/v1/judgments/pairwise",
        "/v1/judgments/pairwise",
    )
    key = first.headers["Idempotency-Key"]
    assert key and second.headers["Idempotency-Key"] == key
    assert first.body == second.body and json.loads(first.body)["swap"] == "none"
    assert second.at - first.at >= 0.95  # Retry-After honoured
    assert first.headers["Authorization"] == "Bearer k"


def test_a_new_call_gets_a_new_key(server: ScriptedServer) -> None:
    server.script = [Answer(202, JOB), Answer(202, JOB)]
    with Judge(server.url, "k") as judge:
        judge.submit_batch([ITEM])
        judge.submit_batch([ITEM])
    assert server.seen[0].headers["Idempotency-Key"] != server.seen[1].headers["Idempotency-Key"]


def test_dropped_connection_429_502_504_are_retried(server: ScriptedServer) -> None:
    server.script = [
        Answer(0, drop=True),
        Answer(429, {"error": {"type": "rate_limited", "message": "slow down"}}, {"Retry-After": "0"}),
        Answer(502, b"bad gateway"),
        Answer(504, b"gateway timeout"),
        Answer(202, JOB),
    ]
    with Judge(server.url, "k", retries=4, backoff=0.01) as judge:
        judge.submit_batch([ITEM])
    assert len(server.seen) == 5
    assert len({s.headers["Idempotency-Key"] for s in server.seen}) == 1


def test_get_is_retried_too(server: ScriptedServer) -> None:
    server.script = [Answer(503, _error("down"), {"Retry-After": "0"}), Answer(200, JOB)]
    with Judge(server.url, "k") as judge:
        assert judge.job(JOB["id"]).status == "queued"
    assert [s.path for s in server.seen] == [f"/v1/jobs/{JOB['id']}"] * 2


def test_500_and_4xx_are_not_retried(server: ScriptedServer) -> None:
    server.script = [Answer(500, {"error": {"type": "internal_error", "message": "internal server error"}})]
    with Judge(server.url, "k") as judge, pytest.raises(ServerError, match="internal server error") as caught:
        judge.job(JOB["id"])
    assert caught.value.status == 500 and not isinstance(caught.value, Unavailable)
    assert len(server.seen) == 1


def test_retries_run_out(server: ScriptedServer) -> None:
    server.script = [Answer(503, _error("the queue is unreachable"), {"Retry-After": "0"})] * 3
    with Judge(server.url, "k", retries=2) as judge, pytest.raises(Unavailable, match="queue is unreachable"):
        judge.submit_batch([ITEM])
    assert len(server.seen) == 3


def test_rate_limited_carries_retry_after(server: ScriptedServer) -> None:
    server.script = [
        Answer(429, {"error": {"type": "rate_limited", "message": "limit"}}, {"Retry-After": "7"})
    ]
    with Judge(server.url, "k", retries=0) as judge, pytest.raises(RateLimited) as caught:
        judge.job(JOB["id"])
    assert caught.value.retry_after == 7.0 and caught.value.type == "rate_limited"


def test_a_retry_after_too_long_to_wait_is_raised_at_once(server: ScriptedServer) -> None:
    server.script = [Answer(429, {"error": {"message": "cap"}}, {"Retry-After": "3600"})]
    started = time.monotonic()
    with Judge(server.url, "k") as judge, pytest.raises(RateLimited):
        judge.job(JOB["id"])
    assert time.monotonic() - started < 2 and len(server.seen) == 1


def test_a_body_that_is_not_json(server: ScriptedServer) -> None:
    server.script = [Answer(200, b"<html>proxy</html>")]
    with Judge(server.url, "k") as judge, pytest.raises(JudgeError, match="not JSON"):
        judge.job(JOB["id"])


@pytest.mark.anyio
async def test_async_client_retries_with_the_same_key(server: ScriptedServer) -> None:
    server.script = [
        Answer(0, drop=True),
        Answer(503, _error("down"), {"Retry-After": "0"}),
        Answer(202, JOB),
    ]
    async with AsyncJudge(server.url, "k", backoff=0.01) as judge:
        job = await judge.submit_batch([ITEM])
    assert job.status == "queued"
    assert len(server.seen) == 3
    assert len({s.headers["Idempotency-Key"] for s in server.seen}) == 1
