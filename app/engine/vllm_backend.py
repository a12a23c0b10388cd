"""The vllm backend: vLLM's offline ``LLM`` engine in this process, on one or more GPUs.

vllm is an optional dependency (``pip install 'judge-service[vllm]'``): this module imports it only
when an engine is built, so the rest of the service never needs it.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.engine.base import Conversation, EngineError, Generation, LabelDistribution, SamplingParams
from app.engine.chat import label_distribution, label_token_ids, matched_stop, render_with_tokenizer

log = logging.getLogger(__name__)

# The first generated token's top log-probs cover single-token labels in one cheap pass; vLLM's
# default max_logprobs is 20, so asking for more would be refused by a default-configured engine.
_TOP_LOGPROBS = 20


class VLLMEngine:
    """vLLM with automatic prefix caching (judge prompts share long templates).

    Raises EngineError when vllm is not installed or the engine cannot start.
    """

    def __init__(
        self,
        model_path: Path,
        model_name: str,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        dtype: str = "auto",
        *,
        max_model_len: int | None = None,
        seed: int = 0,
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise EngineError(
                "the vllm backend needs the vllm package (pip install 'judge-service[vllm]'), "
                "which is not installed; use backend=transformers or openai instead"
            ) from exc
        self._vllm: Any = vllm
        self._model_name = model_name
        started = time.perf_counter()
        kwargs: dict[str, Any] = {
            "model": str(model_path),
            "tokenizer": str(model_path),
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "dtype": dtype,
            "enable_prefix_caching": True,
            "seed": seed,
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        self._kwargs = kwargs
        self._start(model_name, started)

    def _start(self, model_name: str, started: float) -> None:
        vllm, kwargs, model_path = self._vllm, self._kwargs, self._kwargs["model"]
        try:
            self._llm: Any = vllm.LLM(**kwargs)
            self._tokenizer: Any = self._llm.get_tokenizer()
        except Exception as exc:  # vLLM raises many types (CUDA, config, OOM); report them as one
            raise EngineError(f"vllm could not start model {model_name!r} from {model_path}: {exc}") from exc
        log.info("vllm loaded %s in %.1f s", model_name, time.perf_counter() - started)

    @property
    def model_name(self) -> str:
        return self._model_name

    def render_chat(self, conversation: Conversation) -> str:
        """The prompt text: the tokenizer's chat template (see app.engine.chat)."""
        return render_with_tokenizer(self._tokenizer, conversation)

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        """Complete each conversation; vLLM schedules the whole list as one batch."""
        if not prompts:
            return []
        encoded = [self._encode(p) for p in prompts]
        greedy = sampling.temperature <= 0
        params = self._vllm.SamplingParams(
            n=1,
            temperature=0.0 if greedy else sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            skip_special_tokens=True,
        )
        outputs, latency_ms = self._run(encoded, params)
        results = []
        for ids, request in zip(encoded, outputs, strict=True):
            completion = request.outputs[0]
            results.append(
                Generation(
                    text=str(completion.text),
                    tokens_in=len(ids),
                    tokens_out=len(completion.token_ids),
                    finish_reason="length" if completion.finish_reason == "length" else "stop",
                    latency_ms=latency_ms,
                    # vLLM reports the matched stop string (or a stop token id) as stop_reason.
                    stop_string=matched_stop(getattr(completion, "stop_reason", None), sampling.stop),
                )
            )
        return results

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        """Each label's probability as the assistant's whole reply, normalised over ``labels``.

        Single-token labels are read from the first generated token's top log-probs; a prompt
        whose labels are not all among them, and every multi-token label set, is scored exactly
        from the prompt log-probs of prompt + label.
        """
        if not prompts:
            return []
        label_ids = self._label_token_ids(labels)
        encoded = [self._encode(p) for p in prompts]
        scores: list[list[float] | None] = [None] * len(encoded)
        latencies = [0.0] * len(encoded)

        if all(len(ids) == 1 for ids in label_ids):
            params = self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, logprobs=_TOP_LOGPROBS)
            outputs, latency_ms = self._run(encoded, params)
            for i, request in enumerate(outputs):
                top = request.outputs[0].logprobs[0]
                if all(ids[0] in top for ids in label_ids):
                    scores[i] = [float(top[ids[0]].logprob) for ids in label_ids]
                    latencies[i] = latency_ms

        pending = [i for i, s in enumerate(scores) if s is None]
        if pending:
            pairs = [(i, j) for i in pending for j in range(len(label_ids))]
            params = self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, prompt_logprobs=1)
            outputs, latency_ms = self._run([encoded[i] + label_ids[j] for i, j in pairs], params)
            exact = {i: [0.0] * len(label_ids) for i in pending}
            for (i, j), request in zip(pairs, outputs, strict=True):
                start = len(encoded[i])
                # prompt_logprobs[t] holds the log-prob of prompt token t given the tokens before it.
                exact[i][j] = sum(
                    float(request.prompt_logprobs[start + k][token].logprob)
                    for k, token in enumerate(label_ids[j])
                )
                latencies[i] += latency_ms
            for i, row in exact.items():
                scores[i] = row

        return [
            label_distribution(list(labels), s, len(ids), lat)
            for s, ids, lat in zip(scores, encoded, latencies, strict=True)
            if s is not None
        ]

    def load_weights(self, model_path: Path, model_name: str) -> None:
        """Serve another checkpoint of the same family: the engine is shut down and started again on
        it in this process (GPU memory is released first), keeping every other setting."""
        self.close()
        self._kwargs = {**self._kwargs, "model": str(model_path), "tokenizer": str(model_path)}
        self._model_name = model_name
        self._start(model_name, time.perf_counter())

    def close(self) -> None:
        """Shut the engine down and release GPU memory."""
        if getattr(self, "_llm", None) is None:
            return
        self._llm = None
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        except Exception:  # older/newer vllm: fall back to what torch can free
            log.debug("vllm cleanup_dist_env_and_memory unavailable", exc_info=True)
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # -- helpers -------------------------------------------------------------------------------

    def _run(self, encoded: list[list[int]], params: Any) -> tuple[list[Any], float]:
        """Run token-id prompts through vLLM; the outputs in input order and the per-item latency."""
        if self._llm is None:
            raise EngineError(f"engine for {self._model_name!r} is closed")
        started = time.perf_counter()
        try:
            outputs = self._llm.generate(
                [{"prompt_token_ids": ids} for ids in encoded], params, use_tqdm=False
            )
        except ValueError as exc:  # e.g. a prompt longer than the model's context
            raise EngineError(f"vllm rejected the batch: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000 / max(1, len(encoded))
        return list(outputs), latency_ms

    def _encode(self, conversation: Conversation) -> list[int]:
        # The template already holds the special tokens, so the tokenizer must not add a second BOS.
        return list(self._tokenizer(self.render_chat(conversation), add_special_tokens=False)["input_ids"])

    def _label_token_ids(self, labels: Sequence[str]) -> list[list[int]]:
        return label_token_ids(self._tokenizer, labels)
