"""The openai backend against a real HTTP server (stdlib, in a thread) that speaks the chat API."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings
from app.engine.base import Conversation, Engine, EngineError, SamplingParams
from app.engine.factory import build_engine
from app.engine.openai_backend import OpenAIEngine


def user(text: str) -> Conversation:
    return [{"role": "user", "content": text}]


# The first token's top log-probs the fake server returns for logprobs requests.
TOP_LOGPROBS = [(" A", 0.5), ("A", 0.2), ("B", 0.1), ("Both", 0.05), ("b", 0.05)]


@dataclass
class ServerState:
    fail_next: int = 0  # answer this many next requests with 503
    fail_status: int = 503
    delay: float = 0.0
    top_logprobs: list[tuple[str, float]] = field(default_factory=lambda: list(TOP_LOGPROBS))
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState) -> None:
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.state = state


class ChatHandler(BaseHTTPRequestHandler):
    server: FakeChatServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        state = self.server.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with state.lock:
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            failing = state.fail_next > 0
            if failing:
                state.fail_next -= 1
        try:
            time.sleep(state.delay)
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
            elif failing:
                self._send(state.fail_status, {"error": {"message": "overloaded, try later"}})
            elif body.get("max_tokens", 1) < 1:
                self._send(400, {"error": {"message": "max_tokens must be at least 1"}})
            else:
                self._send(200, self._completion(body, state))
        finally:
            with state.lock:
                state.in_flight -= 1

    def _completion(self, body: dict[str, Any], state: ServerState) -> dict[str, Any]:
        prompt = body["messages"][-1]["content"]
        words = f"echo {prompt}".split()
        out = words[: body["max_tokens"]]
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": " ".join(out)},
            "finish_reason": "length" if len(words) > body["max_tokens"] else "stop",
        }
        if body.get("logprobs"):
            top = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in state.top_logprobs]
            top = top[: body.get("top_logprobs", 0)]
            choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}] if top else []}
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(out),
                "total_tokens": prompt_tokens + len(out),
            },
        }

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    httpd = FakeChatServer(state)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def make_engine(base_url: str, **kwargs: Any) -> OpenAIEngine:
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("timeout", 10.0)
    return OpenAIEngine(base_url, "judge-model", **kwargs)


def test_generate_sends_decoding_settings_and_reads_usage(server: tuple[str, ServerState]) -> None:
    base_url, state = server
    engine = make_engine(base_url, api_key="sk-test")
    sampling = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=3, seed=11, stop=("###",))
    short, long = engine.generate([user("hi"), user("one two three four")], sampling)
    engine.close()

    assert isinstance(engine, Engine)
    assert (short.text, short.tokens_in, short.tokens_out, short.finish_reason) == ("echo hi", 1, 2, "stop")
    assert (long.text, long.tokens_out, long.finish_reason) == ("echo one two", 3, "length")
    assert short.latency_ms > 0
    sent = next(r for r in state.requests if r["messages"] == [{"role": "user", "content": "hi"}])
    assert sent["model"] == "judge-model"
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"], sent["stop"]) == (
        0.7,
        0.9,
        3,
        11,
        ["###"],
    )
    assert state.headers[0]["authorization"] == "Bearer sk-test"


def test_outputs_keep_input_order_under_concurrency(server: tuple[str, ServerState]) -> None:
    base_url, state = server
    state.delay = 0.02
    engine = make_engine(base_url, max_concurrency=4)
    prompts = [user(f"item {i}") for i in range(12)]
    outputs = engine.generate(prompts, SamplingParams(max_tokens=8))
    engine.close()
    assert [o.text for o in outputs] == [f"echo item {i}" for i in range(12)]


def test_concurrency_is_bounded(server: tuple[str, ServerState]) -> None:
    base_url, state = server
    state.delay = 0.3
    engine = make_engine(base_url, max_concurrency=3)
    engine.generate([user(str(i)) for i in range(10)], SamplingParams(max_tokens=4))
    engine.close()
    # Never more than the bound; concurrent at all (on a loaded machine not every slot may overlap).
    assert 2 <= state.max_in_flight <= 3


def test_transient_errors_are_retried(server: tuple[str, ServerState]) -> None:
    base_url, state = server
    state.fail_next = 2
    engine = make_engine(base_url, max_retries=4)
    (out,) = engine.generate([user("hello")], SamplingParams(max_tokens=4))
    engine.close()
    assert out.text == "echo hello"
    assert len(state.requests) == 3


def test_gives_up_after_max_retries(server: tuple[str, ServerState]) -> None:
    base_url, state = server
    state.fail_next = 100
    state.fail_status = 429
    engine = make_engine(base_url, max_retries=2)
    with pytest.raises(EngineError, match="after 3 attempts.*429.*overloaded"):
        engine.generate([user("hello")], SamplingParams(max_tokens=4))
    engine.close()
    assert len(state.requests) == 3


def test_client_errors_are_not_retried(server: tuple[str, ServerState]) -> None:
    base_url, state = server
    engine = make_engine(base_url, max_retries=4)
    with pytest.raises(EngineError, match="400.*max_tokens"):
        engine.generate([user("hello")], SamplingParams(max_tokens=0))
    engine.close()
    assert len(state.requests) == 1


def test_unreachable_server_is_an_engine_error() -> None:
    engine = make_engine("http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(EngineError, match="after 2 attempts.*Connect"):
        engine.generate([user("hello")], SamplingParams(max_tokens=4))
    engine.close()


def test_label_logprobs_sum_matching_first_tokens(server: tuple[str, ServerState]) -> None:
    base_url, state = server
    engine = make_engine(base_url)
    dists = engine.label_logprobs([user("A or B?"), user("again")], ["A", "B", "C"])
    engine.close()

    sent = state.requests[0]
    assert (sent["max_tokens"], sent["logprobs"], sent["top_logprobs"], sent["temperature"]) == (
        1,
        True,
        20,
        0.0,
    )
    for dist in dists:
        # " A" and "A" both count for A; "Both" and "b" match nothing.
        assert dist.probs == pytest.approx({"A": 0.7 / 0.8, "B": 0.1 / 0.8, "C": 0.0})
        assert dist.mass == pytest.approx(0.8)
    assert [d.tokens_in for d in dists] == [3, 1]


def test_label_logprobs_without_any_label_is_uniform_with_zero_mass(server: tuple[str, ServerState]) -> None:
    base_url, state = server
    state.top_logprobs = [("Hello", 0.9)]
    engine = make_engine(base_url)
    (dist,) = engine.label_logprobs([user("?")], ["A", "B"])
    engine.close()
    assert dist.probs == {"A": 0.5, "B": 0.5}
    assert dist.mass == 0.0


def test_render_chat_is_a_role_prefixed_transcript() -> None:
    engine = make_engine("http://127.0.0.1:9/v1")
    text = engine.render_chat([{"role": "system", "content": "Be fair."}, {"role": "user", "content": "Hi"}])
    engine.close()
    assert text == "system: Be fair.\n\nuser: Hi\n\nassistant:"


def test_closed_engine_refuses_work(server: tuple[str, ServerState]) -> None:
    base_url, _ = server
    engine = make_engine(base_url)
    engine.close()
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.generate([user("hi")], SamplingParams())


def test_factory_builds_the_openai_engine(server: tuple[str, ServerState], tmp_path: Path) -> None:
    base_url, state = server
    settings = Settings(
        data_dir=tmp_path,
        backend="openai",
        openai_base_url=base_url,
        openai_model="served-name",
        openai_api_key="k",
    )
    engine = build_engine(settings, "my-judge", None)
    engine.generate([user("hi")], SamplingParams(max_tokens=2))
    engine.close()
    assert isinstance(engine, OpenAIEngine)
    assert engine.model_name == "my-judge"
    assert state.requests[0]["model"] == "served-name"

    with pytest.raises(EngineError, match="OPENAI_BASE_URL"):
        build_engine(Settings(data_dir=tmp_path, backend="openai", openai_base_url=None), "my-judge", None)
