"""The openai backend: any OpenAI-compatible ``/chat/completions`` server (vLLM, TGI, llama.cpp,
OpenAI itself). The server owns the model and its chat template; this side bounds concurrency and
retries transient failures."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from app.engine.base import Conversation, EngineError, Generation, LabelDistribution, SamplingParams
from app.engine.chat import has_open_reply, matched_stop

log = logging.getLogger(__name__)

# 408 and 409 are worth a retry too (request timeout; OpenAI's "try again" conflict).
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_TOP_LOGPROBS = 20


class OpenAIEngine:
    """Calls an OpenAI-compatible server, at most ``max_concurrency`` requests at a time.

    ``model`` is the model name on the server; ``model_name`` (default: ``model``) is the name the
    service knows it by. A request that fails with 408/409/429/5xx or a connection error is retried
    ``max_retries`` times with exponential backoff (``Retry-After`` is honoured); then, or on any
    other error status, the call raises EngineError.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        *,
        model_name: str | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self._model = model
        self._model_name = model_name or model
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="openai-engine")
        self._closed = threading.Event()

    @property
    def model_name(self) -> str:
        return self._model_name

    def render_chat(self, conversation: Conversation) -> str:
        """A role-prefixed transcript; the server applies the model's real chat template."""
        turns = [f"{m['role']}: {m['content']}" for m in conversation]
        return "\n\n".join([*turns, "assistant:"])

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        """One chat completion per conversation, sent concurrently, returned in input order."""
        bodies = [self._body(p, sampling) for p in prompts]
        return list(self._map(self._generation, bodies))

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        """Label probabilities from the first generated token's top-20 log-probs.

        A token counts for a label when both are equal after stripping whitespace (so ``" A"`` and
        ``"A"`` add up). Only the first token is seen, so a label the server's tokenizer splits
        into several tokens gets no mass. When no label is among the top tokens, ``probs`` is
        uniform and ``mass`` is 0.
        """
        if not labels:
            raise ValueError("labels must not be empty")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct")
        sampling = SamplingParams(temperature=0.0, max_tokens=1)
        bodies = []
        for prompt in prompts:
            body = self._body(prompt, sampling)
            body.update(logprobs=True, top_logprobs=_TOP_LOGPROBS)
            bodies.append(body)
        return list(self._map(lambda body: self._distribution(body, labels), bodies))

    def load_weights(self, model_path: Path, model_name: str) -> None:
        raise EngineError(
            f"the openai backend serves the remote server's model; it cannot load {model_name!r} from "
            f"{model_path} (serve that checkpoint with an OpenAI-compatible server and register it)"
        )

    def close(self) -> None:
        """Stop the worker threads and close the connections."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._pool.shutdown(wait=True)
        self._client.close()

    # -- requests ------------------------------------------------------------------------------

    def _map(self, fn: Any, bodies: list[dict[str, Any]]) -> list[Any]:
        if self._closed.is_set():
            raise EngineError(f"engine for {self._model_name!r} is closed")
        return list(self._pool.map(fn, bodies))

    def _body(self, prompt: Conversation, sampling: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in prompt],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if has_open_reply(prompt):
            # vLLM's OpenAI-compatible server extension: continue the final assistant message.
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        return body

    def _generation(self, body: dict[str, Any]) -> Generation:
        data, latency_ms = self._post(body)
        choice = _first_choice(data)
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        return Generation(
            text=str(message.get("content") or ""),
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            latency_ms=latency_ms,
            # vLLM's server names the matched stop string; plain OpenAI servers do not.
            stop_string=matched_stop(choice.get("stop_reason"), body.get("stop") or []),
        )

    def _distribution(self, body: dict[str, Any], labels: Sequence[str]) -> LabelDistribution:
        data, latency_ms = self._post(body)
        choice = _first_choice(data)
        try:
            first = choice["logprobs"]["content"][0]
            top = first.get("top_logprobs") or [first]
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineError(f"server returned no logprobs for model {self._model!r}") from exc
        wanted = {label.strip(): label for label in labels}
        mass = dict.fromkeys(labels, 0.0)
        for entry in top:
            label = wanted.get(str(entry.get("token", "")).strip())
            if label is not None:
                mass[label] += math.exp(float(entry["logprob"]))
        total = sum(mass.values())
        if total > 0:
            probs = {label: m / total for label, m in mass.items()}
        else:
            probs = {label: 1.0 / len(labels) for label in labels}
        usage = data.get("usage") or {}
        return LabelDistribution(
            probs=probs, tokens_in=int(usage.get("prompt_tokens") or 0), latency_ms=latency_ms, mass=total
        )

    def _post(self, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """POST a chat completion with retries; the parsed body and the last attempt's latency."""
        attempt = 0
        while True:
            started = time.perf_counter()
            retry_after: float | None = None
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                latency_ms = (time.perf_counter() - started) * 1000
                if response.status_code == 200:
                    try:
                        data = response.json()
                    except ValueError as exc:
                        raise EngineError(f"server sent invalid JSON: {response.text[:200]!r}") from exc
                    if not isinstance(data, dict):
                        raise EngineError(f"server sent an unexpected body: {response.text[:200]!r}")
                    return data, latency_ms
                reason = f"HTTP {response.status_code}: {_error_message(response)}"
                if response.status_code not in _RETRY_STATUS:
                    raise EngineError(f"chat completion failed with {reason}")
                retry_after = _retry_after(response)
            if attempt >= self._max_retries:
                raise EngineError(f"chat completion failed after {attempt + 1} attempts; last error {reason}")
            delay = min(self._backoff_max, self._backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = min(self._backoff_max, max(delay, retry_after))
            attempt += 1
            log.warning("chat completion attempt %d failed (%s); retrying in %.2f s", attempt, reason, delay)
            time.sleep(delay)


def _first_choice(data: dict[str, Any]) -> dict[str, Any]:
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise EngineError("server response has no choices") from exc
    if not isinstance(choice, dict):
        raise EngineError("server response has a malformed choice")
    return choice


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
    except (ValueError, AttributeError):
        pass
    return response.text[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; the exponential backoff is good enough
