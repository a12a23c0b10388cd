"""Worker tests: the real job runner and database, with a scripted test-double engine."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from redis import Redis

from app.core.config import Settings
from app.core.db import Database
from app.engine.base import Conversation, Generation, LabelDistribution, SamplingParams
from app.jobs.queue import JobQueue, queue_name
from app.judging import service
from app.judging.schemas import PairwiseRequest, SingleRequest
from app.models import repository as models_repo
from tests.conftest import RollbackDatabase
from workers import context


class ScriptedEngine:
    """Answers each prompt with ``reply(conversation)``; records every batch it was given."""

    def __init__(self, reply: Callable[[Conversation], str]) -> None:
        self.reply = reply
        self.batches: list[list[Conversation]] = []
        self.fail_on_batch: int | None = None
        # For label scoring: label -> weight (unnormalised); missing labels weigh 1.
        self.label_weights: Callable[[Conversation], dict[str, float]] = lambda conv: {}
        self.scored_labels: list[list[str]] = []
        self.samplings: list[SamplingParams] = []
        self.loaded: list[str] = []

    @property
    def model_name(self) -> str:
        return "scripted"

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        if self.fail_on_batch is not None and len(self.batches) == self.fail_on_batch:
            self.fail_on_batch = None
            raise RuntimeError("engine fell over")
        self.batches.append(list(prompts))
        self.samplings.append(sampling)
        return [self._generation(self.reply(p), sampling.stop) for p in prompts]

    @staticmethod
    def _generation(text: str, stop: Sequence[str]) -> Generation:
        # Stop strings behave as in the real engines: the text ends before the first one.
        hits = sorted((text.find(s), s) for s in stop if s in text)
        if hits:
            at, matched = hits[0]
            return Generation(
                text[:at], tokens_in=10, tokens_out=3, finish_reason="stop", stop_string=matched
            )
        return Generation(text, tokens_in=10, tokens_out=3, finish_reason="stop")

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        self.batches.append(list(prompts))
        self.scored_labels.append(list(labels))
        out = []
        for prompt in prompts:
            weights = self.label_weights(prompt)
            raw = {label: weights.get(label, 1.0) for label in labels}
            total = sum(raw.values())
            probs = {k: v / total for k, v in raw.items()}
            out.append(LabelDistribution(probs=probs, tokens_in=10, mass=0.9))
        return out

    def render_chat(self, conversation: Conversation) -> str:
        return "\n".join(m["content"] for m in conversation)

    def load_weights(self, model_path: Any, model_name: str) -> None:
        self.loaded.append(model_name)

    def close(self) -> None:
        pass


def user_text(conv: Conversation) -> str:
    return next(m["content"] for m in conv if m["role"] == "user")


def first_position_judge(conv: Conversation) -> str:
    """A maximally position-biased judge: always prefers whatever is shown first."""
    return "A]]"


def longer_answer_judge(conv: Conversation) -> str:
    """Prefers the longer of the two shown answers, wherever it is shown."""
    text = user_text(conv)
    a = re.search(r"=== Answer A ===\n(.*?)\n=== End of Answer A ===", text, re.S)
    b = re.search(r"=== Answer B ===\n(.*?)\n=== End of Answer B ===", text, re.S)
    assert a and b, text
    return "A]]" if len(a.group(1)) > len(b.group(1)) else "B]]"


def install_scripted_worker(
    settings: Settings, db: Database, queue: JobQueue, reply: Callable[[Conversation], str], worker_id: str
) -> ScriptedEngine:
    """Make this process a worker for the default model whose engine answers with ``reply``; then
    ``workers.tasks.run_job(job_id)`` runs jobs in-process against ``db``."""
    engine = ScriptedEngine(reply)
    context.install(
        context.WorkerContext(
            settings=settings,
            db=db,
            queue=queue,
            engine=engine,
            model=settings.default_model,
            queue_name=queue_name(settings.default_model),
            worker_id=worker_id,
        )
    )
    return engine


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"batch_size": 4, "job_lease_seconds": 600.0, "job_max_attempts": 2})


@pytest.fixture
def registered_model(worker_settings: Settings, db: RollbackDatabase) -> str:
    with db.unit_of_work() as session:
        models_repo.upsert(session, worker_settings.default_model, "transformers", None)
    return worker_settings.default_model


@pytest.fixture
def make_worker(
    worker_settings: Settings, db: RollbackDatabase, redis: Redis, registered_model: str
) -> Callable[[Callable[[Conversation], str]], ScriptedEngine]:

    def install(reply: Callable[[Conversation], str]) -> ScriptedEngine:
        return install_scripted_worker(worker_settings, db, JobQueue(redis, 60), reply, "test-worker")

    return install


@pytest.fixture
def submit(
    worker_settings: Settings, db: RollbackDatabase, redis: Redis, registered_model: str
) -> Callable[[str, dict[str, Any]], uuid.UUID]:
    def _submit(mode: str, body: dict[str, Any]) -> uuid.UUID:
        request = (
            PairwiseRequest.model_validate(body) if mode == "pairwise" else SingleRequest.model_validate(body)
        )
        with db.unit_of_work() as session:
            submitted = service.submit(session, worker_settings, JobQueue(redis, 60), mode, request)  # type: ignore[arg-type]
            return submitted.job.id

    return _submit
