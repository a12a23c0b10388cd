"""The scheduler with an engine that batches itself (vLLM's shape): requests are handed over one by one
with their priority class, cancel and stop abort them in the engine, a model the engine does not serve
now goes through the scheduler's queue, and transformers-style engines are untouched."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection, Sequence
from concurrent.futures import Future

import pytest

from app.engine.base import (
    Conversation,
    EngineError,
    Generation,
    LabelDistribution,
    NotServing,
    SamplingParams,
)
from app.scheduling.policy import Limits, Priority
from workers.engines import EnginePool
from workers.scheduler import InferenceScheduler, RequestCancelled, SchedulerStopped

GREEDY = SamplingParams(max_tokens=8)


def prompt(text: str) -> Conversation:
    return [{"role": "user", "content": text}]


class SelfBatching:
    """Holds every request until ``release``; answers the prompt's text back."""

    context_length = 100

    def __init__(self) -> None:
        self.serving = "m"
        self.submitted: list[tuple[str, str, int]] = []  # (request id, prompt text, priority)
        self.pending: dict[str, tuple[Future[Generation], str]] = {}
        self.aborted: list[str] = []
        self.batch_calls = 0

    @property
    def model_name(self) -> str:
        return self.serving

    def count_tokens(self, conversation: Conversation) -> int:
        return len(conversation[-1]["content"])

    def submit_generate(
        self, request_id: str, model: str, prompt: Conversation, sampling: SamplingParams, priority: int
    ) -> Future[Generation]:
        if model != self.serving:
            raise NotServing(model)
        future: Future[Generation] = Future()
        text = prompt[-1]["content"]
        self.submitted.append((request_id, text, priority))
        if "refused" in text:
            future.set_exception(EngineError("vllm refused the request"))
        else:
            self.pending[request_id] = (future, text)
        return future

    def submit_scores(
        self, request_id: str, model: str, prompt: Conversation, labels: Sequence[str], priority: int
    ) -> Future[LabelDistribution]:
        if model != self.serving:
            raise NotServing(model)
        future: Future[LabelDistribution] = Future()
        self.submitted.append((request_id, prompt[-1]["content"], priority))
        future.set_result(LabelDistribution({label: 1 / len(labels) for label in labels}, tokens_in=3))
        return future

    def abort(self, request_ids: Collection[str]) -> None:
        for rid in request_ids:
            self.aborted.append(rid)
            if rid in self.pending:
                future, _ = self.pending.pop(rid)
                future.set_result(Generation("", 1, 0, "cancelled"))

    def release(self) -> None:
        for rid, (future, text) in list(self.pending.items()):
            del self.pending[rid]
            future.set_result(Generation(f"re: {text}", len(text), 2, "stop"))

    # The batch methods: only the scheduler's queue path (a model not held now) calls them.
    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        self.batch_calls += 1
        return [Generation(f"batch: {p[-1]['content']}", 1, 1, "stop") for p in prompts]

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        raise AssertionError("not used")

    def render_chat(self, conversation: Conversation) -> str:
        return conversation[-1]["content"]

    def load_weights(self, model_path: object, model_name: str) -> None:
        self.serving = model_name

    def close(self) -> None:
        pass


@pytest.fixture
def engine() -> SelfBatching:
    return SelfBatching()


@pytest.fixture
def scheduler(engine: SelfBatching) -> InferenceScheduler:
    return InferenceScheduler(EnginePool(engine, "m", 0), Limits(rows=4, tokens=1000, aging_s=0))


def test_requests_are_handed_over_with_their_priority(
    engine: SelfBatching, scheduler: InferenceScheduler
) -> None:
    background = scheduler.submit_generate(
        "m", [prompt("a"), prompt("b")], GREEDY, priority=Priority.BACKGROUND, tenant="t"
    )
    client = scheduler.submit_generate("m", [prompt("c")], GREEDY, priority=Priority.INTERACTIVE, tenant="t")
    assert [(text, p) for _, text, p in engine.submitted] == [("a", 2), ("b", 2), ("c", 0)]
    assert not any(f.done() for f in background + client)
    threading.Timer(0.05, engine.release).start()
    # Inline (no scheduler thread): waiting blocks on the engine's answers.
    assert [g.text for g in scheduler.results(background + client)] == ["re: a", "re: b", "re: c"]
    (dist,) = scheduler.results(
        scheduler.submit_scores("m", [prompt("d")], ["A", "B"], priority=Priority.BATCH, tenant="t")
    )
    assert dist.probs == {"A": 0.5, "B": 0.5}
    assert engine.batch_calls == 0


def test_a_refused_request_fails_alone(engine: SelfBatching, scheduler: InferenceScheduler) -> None:
    futures = scheduler.submit_generate(
        "m", [prompt("refused"), prompt("fine")], GREEDY, priority=Priority.BATCH, tenant="t"
    )
    with pytest.raises(EngineError, match="refused"):
        futures[0].result(1)
    engine.release()
    assert futures[1].result(1).text == "re: fine"


def test_too_long_prompts_are_refused_before_the_engine_sees_them(
    engine: SelfBatching, scheduler: InferenceScheduler
) -> None:
    (future,) = scheduler.submit_generate(
        "m", [prompt("x" * 95)], GREEDY, priority=Priority.BATCH, tenant="t"
    )
    with pytest.raises(EngineError, match="context of 100"):
        future.result(1)
    assert engine.submitted == []


def test_cancel_aborts_the_jobs_requests_in_the_engine(
    engine: SelfBatching, scheduler: InferenceScheduler
) -> None:
    job, other = uuid.uuid4(), uuid.uuid4()
    mine = scheduler.submit_generate(
        "m", [prompt("a"), prompt("b")], GREEDY, priority=Priority.BACKGROUND, tenant="t", job_id=job
    )
    theirs = scheduler.submit_generate(
        "m", [prompt("c")], GREEDY, priority=Priority.BATCH, tenant="t", job_id=other
    )
    assert scheduler.cancel(job) == 2
    assert sorted(engine.aborted) == sorted(rid for rid, text, _ in engine.submitted if text in "ab")
    for future in mine:
        with pytest.raises(RequestCancelled):
            future.result(1)
    engine.release()
    assert theirs[0].result(1).text == "re: c"
    assert scheduler.cancel(job) == 0


def test_stop_aborts_every_request_out(engine: SelfBatching, scheduler: InferenceScheduler) -> None:
    futures = scheduler.submit_generate("m", [prompt("a")], GREEDY, priority=Priority.BATCH, tenant="t")
    scheduler.stop()
    with pytest.raises(SchedulerStopped):
        futures[0].result(1)
    assert len(engine.aborted) == 1


def test_a_model_the_engine_does_not_serve_now_goes_through_the_queue(
    engine: SelfBatching, scheduler: InferenceScheduler
) -> None:
    engine.serving = "swapping"  # a weight swap in progress: the engine refuses with NotServing
    (future,) = scheduler.submit_generate("m", [prompt("q")], GREEDY, priority=Priority.BATCH, tenant="t")
    assert engine.submitted == []
    engine.serving = "m"
    assert scheduler.results([future])[0].text == "batch: q"
    assert engine.batch_calls == 1
