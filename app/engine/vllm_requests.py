"""What the vllm backend asks vLLM for, and how it reads the answers: keyword arguments of
``vllm.SamplingParams`` and readers of ``vllm.RequestOutput``, as plain functions (no vllm import), so
that they are checked against the real classes where vllm is installed and against V1's outputs
everywhere. Written against vLLM 0.32 (``vllm/sampling_params.py``, ``vllm/outputs.py``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.engine.base import EngineError, Generation, SamplingParams

# vLLM's bound on SamplingParams.logprob_token_ids (MAX_LOGPROB_TOKEN_IDS).
MAX_LOGPROB_TOKEN_IDS = 128


def engine_args(
    model_path: Path,
    tensor_parallel_size: int,
    gpu_memory_utilization: float,
    dtype: str,
    max_model_len: int | None,
    seed: int,
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.AsyncEngineArgs``: prefix caching (judge prompts share long
    templates) and priority scheduling (our priority classes become request priorities)."""
    args: dict[str, Any] = {
        "model": str(model_path),
        "tokenizer": str(model_path),
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "dtype": dtype,
        "enable_prefix_caching": True,
        "scheduling_policy": "priority",
        "seed": seed,
    }
    if max_model_len is not None:
        args["max_model_len"] = max_model_len
    return args


def generation_params(sampling: SamplingParams) -> dict[str, Any]:
    """One completion with our decoding settings (greedy when ``temperature == 0``)."""
    greedy = sampling.temperature <= 0
    return {
        "n": 1,
        "temperature": 0.0 if greedy else sampling.temperature,
        "top_p": 1.0 if greedy else sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "seed": sampling.seed,
        "stop": list(sampling.stop) or None,
        "skip_special_tokens": True,
    }


def first_token_params(token_ids: Sequence[int]) -> dict[str, Any]:
    """The log-probs of exactly ``token_ids`` as the first generated token (one decode step, no
    full-vocabulary top-k): single-token labels scored exactly in one pass."""
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "logprob_token_ids": sorted(set(token_ids))}


def label_rows_params(prompt_len: int, label: Sequence[int], read_cache: bool) -> dict[str, Any]:
    """Prompt + label as the prompt; the label's tokens scored where they stand (prompt rows
    ``prompt_len - 1`` on), with targeted prompt log-probs: no full-vocabulary logits per row.

    With ``read_cache`` the shared template is read from the prefix cache; vLLM then drops the scores
    when its cache hit reaches past the first scored row (see :func:`label_rows_score`), and the
    request must be sent again without it."""
    return {
        "n": 1,
        "temperature": 0.0,
        "max_tokens": 1,
        "prompt_logprob_token_ids": [[token] for token in label],
        "prompt_logprob_start": prompt_len - 1,
        "skip_reading_prefix_cache": not read_cache,
    }


def prompt_logprobs_params() -> dict[str, Any]:
    """Prompt + label as the prompt, each prompt token's own log-prob (and no others): the fallback
    where targeted prompt log-probs are refused (vLLM's V1 model runner)."""
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 0}


def first_token_scores(output: Any, label_firsts: Sequence[int]) -> list[float]:
    """Each label's log-prob from a :func:`first_token_params` request."""
    completion = output.outputs[0]
    step = completion.logprobs[0] if completion.logprobs else {}
    missing = [t for t in label_firsts if t not in step]
    if missing:
        raise EngineError(f"vllm returned no log-prob for label tokens {missing}")
    return [float(step[t].logprob) for t in label_firsts]


def label_rows_score(output: Any, label: Sequence[int]) -> float | None:
    """The label's summed log-prob from a :func:`label_rows_params` request; None when vLLM dropped
    the rows (its prefix-cache hit started past them)."""
    rows = getattr(output, "prompt_token_id_logprobs", None)
    if rows is None or len(rows) != len(label):
        return None
    values = [float(row[0]) for row in rows]
    if not all(math.isfinite(v) for v in values):
        return None
    return sum(values)


def prompt_tail_score(output: Any, label: Sequence[int]) -> float | None:
    """The label's summed log-prob from a :func:`prompt_logprobs_params` request, read from the end
    of the prompt log-probs (V1 may return fewer rows than prompt tokens: the first is None, and
    rows before a prefix-cache hit are missing); None when the label's rows are not all there."""
    rows = output.prompt_logprobs or []
    tail = list(rows)[-len(label) :]
    if len(tail) != len(label):
        return None
    total = 0.0
    for row, token in zip(tail, label, strict=True):
        if not row or token not in row:
            return None
        total += float(row[token].logprob)
    return total


def to_generation(
    output: Any, sampling: SamplingParams, tokens_in: int, latency_ms: float, cancelled: bool
) -> Generation:
    """Our Generation from a finished vLLM request, faithful to why it ended.

    V1's finish reasons are stop, length, abort, error and repetition. An abort we asked for (cancel)
    is ``cancelled``; any other abort, an error or a repetition stop is not a completion the model
    chose and raises EngineError, as does a stop on a string that was not one of ours.
    """
    completion = output.outputs[0]
    reason = str(completion.finish_reason)
    stop_reason = getattr(completion, "stop_reason", None)
    tokens_out = len(completion.token_ids)
    if reason == "abort":
        if cancelled:
            return Generation("", tokens_in, tokens_out, "cancelled", latency_ms)
        raise EngineError("vllm aborted the request")
    request_error = getattr(output, "error", None)
    if reason in ("error", "repetition") or request_error is not None:
        detail = getattr(request_error, "message", None) or stop_reason or reason
        raise EngineError(f"vllm ended the generation with {reason!r} ({detail})")
    if reason not in ("stop", "length"):
        raise EngineError(f"vllm ended the generation with an unknown finish reason {reason!r}")
    if reason == "stop" and isinstance(stop_reason, str) and stop_reason not in sampling.stop:
        raise EngineError(f"vllm stopped the generation for {stop_reason!r}, not at a stop string")
    return Generation(
        text=str(completion.text),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        finish_reason=reason,
        latency_ms=latency_ms,
        # A stop string vLLM matched (it is not in the text); a stop token id is not one of ours.
        stop_string=stop_reason if isinstance(stop_reason, str) else None,
    )
