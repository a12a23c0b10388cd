"""Helpers shared by the backends: chat templates, label tokens and distributions, stop strings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from app.engine.base import Conversation, LabelDistribution


def has_open_reply(conversation: Conversation) -> bool:
    """A conversation ending with an assistant message asks the model to continue that message
    (a reply prefix such as ``"Verdict: [["``) rather than to start a new one."""
    return bool(conversation) and conversation[-1]["role"] == "assistant"


def render_with_tokenizer(tokenizer: Any, conversation: Conversation) -> str:
    """The prompt text: the tokenizer's chat template, with the assistant turn opened (or, for an
    open reply, left open after its prefix)."""
    open_reply = has_open_reply(conversation)
    text = tokenizer.apply_chat_template(
        list(conversation),
        tokenize=False,
        add_generation_prompt=not open_reply,
        continue_final_message=open_reply,
    )
    return str(text)


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> list[list[int]]:
    """Each label's token ids as a continuation (no special tokens); labels must be distinct."""
    if not labels:
        raise ValueError("labels must not be empty")
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct")
    out = []
    for label in labels:
        ids = list(tokenizer(label, add_special_tokens=False)["input_ids"]) if label else []
        if not ids:
            raise ValueError(f"label {label!r} has no tokens")
        out.append(ids)
    return out


def label_distribution(
    labels: list[str], scores: list[float], tokens_in: int, latency_ms: float
) -> LabelDistribution:
    """Normalise per-label log-probabilities; ``mass`` keeps how likely the labels were at all."""
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return LabelDistribution(
        probs={label: w / total for label, w in zip(labels, weights, strict=True)},
        tokens_in=tokens_in,
        latency_ms=latency_ms,
        mass=math.exp(top) * total,
    )


def matched_stop(stop_reason: object, stop: Sequence[str]) -> str | None:
    """The stop string a server reports as its stop reason (vLLM does), if it is one of ours."""
    return stop_reason if isinstance(stop_reason, str) and stop_reason in stop else None
