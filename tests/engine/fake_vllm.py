"""A stand-in ``vllm`` module for machines without vLLM: the slice of vLLM 0.32's API the backend uses
(``AsyncEngineArgs``, ``AsyncLLMEngine``, ``SamplingParams``, ``sampling_params.RequestOutputKind``) and
outputs shaped as V1 returns them (read from vllm/outputs.py, vllm/v1/engine/async_llm.py):

- finish reasons "stop", "length", "abort", "error", "repetition"; ``stop_reason`` the matched stop
  string (not in the text) or None;
- ``prompt_logprobs`` for prompt + label with the leading rows missing (None first row, rows under a
  prefix-cache hit absent): readers must count from the end;
- ``prompt_token_id_logprobs`` rows ``[prompt_len - 1 - start, num_ids]``, and None when a prefix-cache
  read started past the first scored row;
- ``VLLMValidationError`` (not a ValueError) for a prompt that does not fit ``max_model_len``, and
  ``EngineDeadError`` once the engine core is gone (``errored`` then true).
"""

from __future__ import annotations

import asyncio
import enum
import types
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import torch


class VLLMError(Exception):
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMServerError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    pass


class EngineDeadError(VLLMServerError):
    def __init__(self) -> None:
        super().__init__("EngineCore encountered an issue. See stack trace (above) for the root cause.")


class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


def fake_logprob(context: list[int], token: int) -> float:
    """The stand-in model: a fixed, context-dependent log-prob for every next token."""
    return -1.0 - ((token * 7 + len(context)) % 11) * 0.25


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.logprobs: int | None = None
        self.logprob_token_ids: list[int] | None = None
        self.prompt_logprobs: int | None = None
        self.prompt_logprob_token_ids: list[list[int]] | None = None
        self.prompt_logprob_start: int | None = None
        self.skip_reading_prefix_cache: bool | None = None
        self.stop: list[str] | None = None
        self.max_tokens = 16
        self.__dict__.update(kwargs)


class FakeEngineArgs:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class FakeAsyncLLM:
    """What a test may set: ``max_model_len``, ``v1_runner`` (refuses targeted prompt log-probs),
    ``cache_hit`` (every targeted read returns no rows), ``reply`` (text, finish reason, stop reason),
    ``gate`` (an asyncio.Event generations wait on), ``fail_reload`` (paths whose reload raises)."""

    built: list[FakeAsyncLLM] = []
    fail_builds = 0

    def __init__(self, args: FakeEngineArgs) -> None:
        self.args = args.kwargs
        # vLLM resolves "auto" from the checkpoint (a float32 one: the GPU's first supported dtype).
        dtype = args.kwargs.get("dtype", "auto")
        self.model_config = SimpleNamespace(
            max_model_len=args.kwargs.get("max_model_len", 2048),
            dtype=getattr(torch, "bfloat16" if dtype == "auto" else dtype),
        )
        self.requests: list[tuple[list[int], FakeSamplingParams, str, int]] = []
        self.calls: list[str] = []
        self.aborted: set[str] = set()
        self.dead = False
        self.v1_runner = False
        self.cache_hit = False
        self.reply: tuple[str, str, str | None] = ("a reply", "stop", None)
        self.gate: asyncio.Event | None = None
        self.fail_reload: set[str] = set()
        self.weights = args.kwargs["model"]

    @classmethod
    def from_engine_args(cls, args: FakeEngineArgs) -> FakeAsyncLLM:
        if cls.fail_builds > 0:
            cls.fail_builds -= 1
            raise RuntimeError("CUDA out of memory")
        llm = cls(args)
        cls.built.append(llm)
        return llm

    @property
    def errored(self) -> bool:
        return self.dead

    async def generate(
        self, prompt: dict[str, list[int]], params: FakeSamplingParams, request_id: str, *, priority: int = 0
    ) -> AsyncIterator[Any]:
        if self.dead:
            raise EngineDeadError()
        ids = prompt["prompt_token_ids"]
        if len(ids) >= self.model_config.max_model_len:
            raise VLLMValidationError(
                f"The decoder prompt (length {len(ids)}) is longer than the maximum model length of "
                f"{self.model_config.max_model_len}."
            )
        if params.prompt_logprob_token_ids is not None and self.v1_runner:
            raise VLLMValidationError(
                "prompt_logprob_token_ids requires the V2 model runner (VLLM_USE_V2_MODEL_RUNNER=1)."
            )
        assert params.output_kind is RequestOutputKind.FINAL_ONLY
        self.requests.append((ids, params, request_id, priority))
        if self.gate is not None and params.max_tokens > 1:
            await self.gate.wait()
        if self.dead:
            raise EngineDeadError()
        yield self._output(ids, params, request_id)

    def _output(self, ids: list[int], params: FakeSamplingParams, request_id: str) -> Any:
        text, reason, stop_reason = self.reply
        n = min(3, params.max_tokens)
        if request_id in self.aborted:
            text, reason, stop_reason, n = "", "abort", None, 0
        elif params.max_tokens <= 3:
            reason, stop_reason = "length", None
        logprobs = None
        if params.logprob_token_ids:
            logprobs = [{t: SimpleNamespace(logprob=fake_logprob(ids, t)) for t in params.logprob_token_ids}]
        prompt_logprobs = None
        if params.prompt_logprobs is not None:
            # V1 on a prefix-cache hit: the rows of the cached part are not there at all.
            kept = range(max(1, len(ids) - 4), len(ids))
            prompt_logprobs = [{ids[k]: SimpleNamespace(logprob=fake_logprob(ids[:k], ids[k]))} for k in kept]
        token_id_rows = None
        if params.prompt_logprob_token_ids is not None and not (
            self.cache_hit and not params.skip_reading_prefix_cache
        ):
            start = params.prompt_logprob_start or 0
            token_id_rows = [
                [fake_logprob(ids[: start + 1 + i], row[0])]
                for i, row in enumerate(params.prompt_logprob_token_ids)
            ]
        completion = SimpleNamespace(
            text=text,
            token_ids=[7] * n,
            finish_reason=reason,
            stop_reason=stop_reason,
            logprobs=logprobs,
        )
        return SimpleNamespace(
            request_id=request_id,
            prompt_token_ids=ids,
            outputs=[completion],
            prompt_logprobs=prompt_logprobs,
            prompt_token_id_logprobs=token_id_rows,
            finished=True,
            error=None,
        )

    async def abort(self, request_id: str | list[str], internal: bool = False) -> None:
        self.aborted.update([request_id] if isinstance(request_id, str) else request_id)
        self.calls.append("abort")

    async def pause_generation(self, *, mode: str = "abort", clear_cache: bool = True) -> None:
        self.calls.append(f"pause:{mode}")

    async def resume_generation(self) -> None:
        self.calls.append("resume")

    async def reset_prefix_cache(self, reset_running_requests: bool = False) -> bool:
        self.calls.append("reset_prefix_cache")
        return True

    async def collective_rpc(
        self, method: str, timeout: float | None = None, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> list[Any]:
        assert method == "reload_weights"
        path = kwargs["weights_path"]
        self.calls.append(f"reload:{path}")
        if path in self.fail_reload:
            self.weights = "half-loaded"
            raise RuntimeError(f"size mismatch for {path}")
        self.weights = path
        return [None]

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def module() -> Any:
    """A fresh stand-in ``vllm`` module (install it and its ``sampling_params`` in sys.modules)."""
    FakeAsyncLLM.built = []
    FakeAsyncLLM.fail_builds = 0
    vllm: Any = types.ModuleType("vllm")
    vllm.AsyncEngineArgs = FakeEngineArgs
    vllm.AsyncLLMEngine = FakeAsyncLLM
    vllm.SamplingParams = FakeSamplingParams
    vllm.sampling_params = types.ModuleType("vllm.sampling_params")
    vllm.sampling_params.RequestOutputKind = RequestOutputKind
    return vllm
