"""An Engine that sends every call through the worker's scheduler, as one job's requests.

Long jobs (prompt optimization, self-reward) are written against the Engine interface; through this
they share batching, priorities and cancel with live judging, and never call a backend themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from app.engine.base import Conversation, EngineError, Generation, LabelDistribution, SamplingParams
from app.scheduling.policy import Priority
from workers.scheduler import InferenceScheduler


class ScheduledEngine:
    """``model`` as seen by one job: its calls are requests of ``priority`` for ``tenant``."""

    def __init__(
        self,
        scheduler: InferenceScheduler,
        model: str,
        priority: Priority,
        tenant: str,
        job_id: uuid.UUID | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.model = model
        self.priority = priority
        self.tenant = tenant
        self.job_id = job_id

    @property
    def model_name(self) -> str:
        return self.model

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        """Every prompt's completion; raises the first request's failure (RequestCancelled when the
        job was cancelled, SchedulerStopped when the worker is stopping, EngineError)."""
        futures = self.scheduler.submit_generate(
            self.model, prompts, sampling, priority=self.priority, tenant=self.tenant, job_id=self.job_id
        )
        return self.scheduler.results(futures)

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        futures = self.scheduler.submit_scores(
            self.model, prompts, labels, priority=self.priority, tenant=self.tenant, job_id=self.job_id
        )
        return self.scheduler.results(futures)

    def render_chat(self, conversation: Conversation) -> str:
        return self.scheduler.engines.render_chat(self.model, conversation)

    def load_weights(self, model_path: Path, model_name: str) -> None:
        raise EngineError("a scheduled engine serves one model; the scheduler loads weights itself")

    def close(self) -> None:
        """Nothing to free: the scheduler owns the engines."""
