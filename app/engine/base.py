"""The inference-engine interface every backend implements.

Inputs and outputs are plain Python values: a prompt is a chat conversation (a list of
``{"role": ..., "content": ...}`` messages); the backend applies its own chat template. No backend
type ever leaks past its module.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypedDict, runtime_checkable


class ChatMessage(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


Conversation = list[ChatMessage]


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings for one batch. ``temperature == 0`` means greedy decoding."""

    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """One generated completion."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str  # "stop" | "length" | "cancelled" (stopped by BatchControl)
    latency_ms: float = 0.0
    # The stop string (from SamplingParams.stop) that ended the text, if one did; it is not in
    # ``text``, but the model did write it.
    stop_string: str | None = None
    # Time the request waited for the engine before its batch started (set by the scheduler);
    # ``latency_ms`` is its own time in the engine.
    queue_ms: float = 0.0


@dataclass(frozen=True)
class LabelDistribution:
    """Normalised probabilities of candidate labels as the next tokens after a prompt."""

    probs: dict[str, float] = field(default_factory=dict)
    tokens_in: int = 0
    latency_ms: float = 0.0
    # Total probability the labels had before normalisation: near 0 means the model would rather
    # have said something else (exactly 0, with uniform ``probs``, when no label was seen at all).
    mass: float = 1.0
    # Time the request waited for the engine (set by the scheduler).
    queue_ms: float = 0.0


class EngineError(RuntimeError):
    """A backend failed in a way the caller may report (not a programming error)."""


class NotServing(EngineError):
    """The engine does not serve that model at this moment (its weights are being swapped): queue the
    request and ask again later."""


@dataclass(frozen=True)
class BatchControl:
    """Hooks a scheduler hands a backend for one call (backends that support them say so with
    ``supports_control = True``).

    ``between_steps`` runs between decode steps and prefill chunks, in the engine's thread: it may run
    other, more urgent engine calls there (preemption) and returns the indices (positions in this
    call's prompts) of rows to stop now (cancelled). ``row_done`` receives each row's output as soon
    as the row finishes, before the call returns.
    """

    between_steps: Callable[[], Collection[int]] | None = None
    row_done: Callable[[int, Generation], None] | None = None


@runtime_checkable
class Engine(Protocol):
    """What the judging core and the workers need from a model backend."""

    @property
    def model_name(self) -> str: ...

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        """Complete every conversation (one assistant turn each), in input order."""
        ...

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        """For each conversation, the probability of each label as the assistant's next text."""
        ...

    def render_chat(self, conversation: Conversation) -> str:
        """The exact text the model sees for a conversation (chat template applied)."""
        ...

    def load_weights(self, model_path: Path, model_name: str) -> None:
        """Serve another checkpoint of the same architecture (a model trained from this one) from
        now on, in place; raises EngineError when the backend cannot (a remote server)."""
        ...

    def close(self) -> None:
        """Free the engine's memory (GPU included)."""
        ...


@runtime_checkable
class SelfBatchingEngine(Protocol):
    """An engine that batches continuously itself (vLLM): a scheduler hands it each request as it
    comes, with a priority, instead of building batches for it, and aborts requests to cancel them.

    ``priority`` follows :class:`app.scheduling.policy.Priority` (lower runs first). ``model`` is the
    model the caller means: the engine raises NotServing at once when it holds other weights now.
    Futures fail with EngineError when the request cannot run; an aborted generation resolves with
    finish reason ``cancelled``.
    """

    def submit_generate(
        self, request_id: str, model: str, prompt: Conversation, sampling: SamplingParams, priority: int
    ) -> Future[Generation]: ...

    def submit_scores(
        self, request_id: str, model: str, prompt: Conversation, labels: Sequence[str], priority: int
    ) -> Future[LabelDistribution]: ...

    def abort(self, request_ids: Collection[str]) -> None:
        """Stop these requests (unknown or finished ones are ignored)."""
        ...
