"""An engine wrapper that records each call's batch size and wall time (the worker's metrics)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from app.engine.base import Conversation, Engine, Generation, LabelDistribution, SamplingParams
from app.metrics.recorder import WorkerMetrics


class MeteredEngine:
    """``engine`` serving ``model``, measured. Everything else passes through."""

    def __init__(self, engine: Engine, model: str, metrics: WorkerMetrics) -> None:
        self.engine = engine
        self.model = model
        self.metrics = metrics

    @property
    def model_name(self) -> str:
        return self.engine.model_name

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        started = time.perf_counter()
        out = self.engine.generate(prompts, sampling)
        self.metrics.record_engine_call(self.model, "generate", len(prompts), time.perf_counter() - started)
        return out

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        started = time.perf_counter()
        out = self.engine.label_logprobs(prompts, labels)
        self.metrics.record_engine_call(
            self.model, "label_logprobs", len(prompts), time.perf_counter() - started
        )
        return out

    def render_chat(self, conversation: Conversation) -> str:
        return self.engine.render_chat(conversation)

    def load_weights(self, model_path: Path, model_name: str) -> None:
        self.engine.load_weights(model_path, model_name)

    def close(self) -> None:
        self.engine.close()
