"""The inference scheduler with a stepping test-double engine: preemption between decode steps,
cancel within a step, failures that stay with their request, the token budget, early results."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future

import pytest

from app.engine.base import (
    BatchControl,
    Conversation,
    EngineError,
    Generation,
    LabelDistribution,
    SamplingParams,
)
from app.scheduling.policy import Limits, Priority
from workers import engines
from workers.engines import EnginePool
from workers.scheduler import InferenceScheduler, RequestCancelled, SchedulerStopped

GREEDY = SamplingParams(temperature=0.0, max_tokens=8)


def prompt(text: str) -> Conversation:
    return [{"role": "user", "content": text}]


class SteppingEngine:
    """Decodes ``steps=N`` tokens per prompt, one step at a time (``step_s`` each), honouring
    BatchControl. A prompt containing "poison" makes the whole call raise EngineError."""

    supports_control = True
    context_length = 200

    def __init__(self, step_s: float = 0.0) -> None:
        self.step_s = step_s
        self.batches: list[list[str]] = []
        self.events: list[str] = []
        self.dropped: list[str] = []

    @property
    def model_name(self) -> str:
        return "stepper"

    def count_tokens(self, conversation: Conversation) -> int:
        return len(conversation[-1]["content"])

    def generate(
        self, prompts: Sequence[Conversation], sampling: SamplingParams, control: BatchControl | None = None
    ) -> list[Generation]:
        texts = [p[-1]["content"] for p in prompts]
        self.batches.append(texts)
        if any("poison" in t for t in texts):
            raise EngineError("a prompt the backend refuses")
        steps = [int(t.split("steps=")[1].split()[0]) if "steps=" in t else 1 for t in texts]
        out: list[Generation | None] = [None] * len(prompts)
        live = set(range(len(prompts)))
        step = 0
        while live:
            time.sleep(self.step_s)
            step += 1
            for i in sorted(live):
                if steps[i] <= step:
                    live.discard(i)
                    out[i] = Generation(texts[i].upper(), len(texts[i]), step, "stop")
                    self.events.append(f"done {texts[i]}")
                    if control is not None and control.row_done is not None:
                        control.row_done(i, out[i])  # type: ignore[arg-type]
            if live and control is not None and control.between_steps is not None:
                for i in control.between_steps():
                    if i in live:
                        live.discard(i)
                        self.dropped.append(texts[i])
                        out[i] = Generation("", 0, 0, "cancelled")
        return [o for o in out if o is not None]

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str], control: BatchControl | None = None
    ) -> list[LabelDistribution]:
        self.batches.append([p[-1]["content"] for p in prompts])
        return [LabelDistribution({label: 1 / len(labels) for label in labels}) for _ in prompts]

    def render_chat(self, conversation: Conversation) -> str:
        return conversation[-1]["content"]

    def load_weights(self, model_path: object, model_name: str) -> None:
        raise AssertionError("not expected")

    def close(self) -> None:
        pass


def make(engine: SteppingEngine, rows: int = 8, tokens: int = 10_000) -> InferenceScheduler:
    return InferenceScheduler(EnginePool(engine, "stepper", 0), Limits(rows=rows, tokens=tokens, aging_s=30))


@pytest.fixture
def threaded() -> Iterator[tuple[SteppingEngine, InferenceScheduler]]:
    engine = SteppingEngine(step_s=0.01)
    scheduler = make(engine)
    scheduler.start()
    yield engine, scheduler
    scheduler.stop()


def submit(
    scheduler: InferenceScheduler,
    texts: list[str],
    priority: Priority = Priority.BATCH,
    tenant: str = "t",
    job_id: uuid.UUID | None = None,
) -> list[Future[Generation]]:
    return scheduler.submit_generate(
        "stepper", [prompt(t) for t in texts], GREEDY, priority=priority, tenant=tenant, job_id=job_id
    )


def test_inline_results_come_back_in_order() -> None:
    engine = SteppingEngine()
    scheduler = make(engine)
    futures = submit(scheduler, ["a steps=2", "b", "c steps=3"])
    assert [g.text for g in scheduler.results(futures)] == ["A STEPS=2", "B", "C STEPS=3"]
    assert engine.batches == [["a steps=2", "b", "c steps=3"]]


def test_a_waiting_client_preempts_a_long_background_batch(
    threaded: tuple[SteppingEngine, InferenceScheduler],
) -> None:
    engine, scheduler = threaded
    long_job = submit(scheduler, ["bg steps=200"], Priority.BACKGROUND, job_id=uuid.uuid4())
    time.sleep(0.1)  # the background batch is decoding
    started = time.monotonic()
    [urgent] = submit(scheduler, ["client steps=2"], Priority.INTERACTIVE)
    assert urgent.result(timeout=5).text == "CLIENT STEPS=2"
    assert time.monotonic() - started < 1.0  # not after the 2 s background batch
    assert not long_job[0].done()
    assert long_job[0].result(timeout=10).tokens_out == 200  # resumed where it was
    assert engine.events.index("done client steps=2") < engine.events.index("done bg steps=200")


def test_a_batch_is_preemptable_by_the_class_of_its_rows_still_running(
    threaded: tuple[SteppingEngine, InferenceScheduler],
) -> None:
    """A batch led by judging work, filled with a long job's call: once the judging row is done, new
    judging work no longer waits for the long job's row."""
    engine, scheduler = threaded
    with scheduler._cond:  # both wait before the scheduler's thread looks: one batch
        head = submit(scheduler, ["judging steps=2"], Priority.BATCH)
        filler = submit(scheduler, ["long job steps=300"], Priority.BACKGROUND, job_id=uuid.uuid4())
    head[0].result(timeout=5)
    started = time.monotonic()
    [later] = submit(scheduler, ["more judging steps=2"], Priority.BATCH)
    assert later.result(timeout=5).text == "MORE JUDGING STEPS=2"
    assert time.monotonic() - started < 1.0  # not after the 3 s long-job row
    assert engine.batches[0] == ["judging steps=2", "long job steps=300"]
    assert not filler[0].done()
    assert filler[0].result(timeout=10).tokens_out == 300


def test_cancel_stops_the_jobs_rows_at_the_next_step_and_drops_its_waiting_requests(
    threaded: tuple[SteppingEngine, InferenceScheduler],
) -> None:
    engine, scheduler = threaded
    job = uuid.uuid4()
    running = submit(scheduler, ["mine steps=500"], job_id=job) + submit(
        scheduler, ["other steps=20"], tenant="u"
    )
    time.sleep(0.1)
    waiting = submit(scheduler, ["mine later steps=5"], Priority.BACKGROUND, job_id=job)
    started = time.monotonic()
    assert scheduler.cancel(job) == 2
    for future in (running[0], waiting[0]):
        with pytest.raises(RequestCancelled):
            future.result(timeout=1)
    assert time.monotonic() - started < 1.0
    assert running[1].result(timeout=5).text == "OTHER STEPS=20"  # another job's row went on
    deadline = time.monotonic() + 2
    while "mine steps=500" not in engine.dropped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "mine steps=500" in engine.dropped
    assert all("mine later" not in t for batch in engine.batches for t in batch)


def test_a_poisoned_request_fails_alone_and_its_error_names_nothing_of_the_others() -> None:
    engine = SteppingEngine()
    scheduler = make(engine)
    futures = submit(scheduler, ["fine 1", "poison pill", "fine 2"], tenant="a")
    futures += submit(scheduler, ["other tenant"], tenant="b")
    for future in futures:
        scheduler.wait({future})
    assert [f.result().text for f in (futures[0], futures[2], futures[3])] == [
        "FINE 1",
        "FINE 2",
        "OTHER TENANT",
    ]
    with pytest.raises(EngineError) as failed:
        futures[1].result()
    assert "other tenant" not in str(failed.value) and "fine" not in str(failed.value)


def test_a_prompt_over_the_models_context_is_refused_before_it_joins_a_batch() -> None:
    engine = SteppingEngine()
    scheduler = make(engine)
    too_long, fine = submit(scheduler, ["x" * 195, "short"])
    with pytest.raises(
        EngineError, match="195 tokens; with 8 new tokens it exceeds the model's context of 200"
    ):
        too_long.result(timeout=0)
    assert scheduler.results([fine])[0].text == "SHORT"
    assert engine.batches == [["short"]]


def test_batches_stay_within_the_token_budget() -> None:
    engine = SteppingEngine()
    scheduler = make(engine, rows=8, tokens=100)
    texts = [f"{i:02d}" + "x" * 30 for i in range(6)]  # 32 prompt + 8 new = 40 tokens each
    scheduler.results(submit(scheduler, texts))
    assert [len(b) for b in engine.batches] == [2, 2, 2]


def test_each_row_reports_its_own_wait_before_the_engine() -> None:
    engine = SteppingEngine()
    scheduler = make(engine)
    [gen] = scheduler.results(submit(scheduler, ["a"]))
    assert gen.queue_ms >= 0.0


def test_stopping_fails_what_waits_and_refuses_new_requests() -> None:
    engine = SteppingEngine()
    scheduler = make(engine)
    [waiting] = submit(scheduler, ["never run"])
    scheduler.stop()
    with pytest.raises(SchedulerStopped):
        waiting.result(timeout=0)
    [late] = submit(scheduler, ["too late"])
    with pytest.raises(SchedulerStopped):
        late.result(timeout=0)
    assert engine.batches == []


def test_many_threads_share_batches(threaded: tuple[SteppingEngine, InferenceScheduler]) -> None:
    engine, scheduler = threaded
    results: list[str] = []

    def client(i: int) -> None:
        results.extend(
            g.text for g in scheduler.results(submit(scheduler, [f"c{i} steps=3"], tenant=f"t{i}"))
        )

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == sorted(f"C{i} STEPS=3" for i in range(16))
    assert len(engine.batches) < 16  # calls from different threads were batched together


def test_serving_work_is_a_clients_or_a_judging_jobs_request_not_a_long_jobs() -> None:
    """What trainings on the host pause for (app/training/yielding.py)."""
    scheduler = make(SteppingEngine())
    assert not scheduler.has_serving_work()
    background = submit(scheduler, ["long job"], Priority.BACKGROUND)
    assert not scheduler.has_serving_work()
    judging = submit(scheduler, ["judging"], Priority.BATCH)
    assert scheduler.has_serving_work()
    scheduler.results(background + judging)
    assert not scheduler.has_serving_work()


def test_names_for_the_same_weights_share_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests for a second name of the engine's weights (a jury's judge with its own template) run
    on the engine that holds them, in the same batches as the first name's."""
    engine = SteppingEngine()
    owners = {"stepper-terse": "stepper", "stepper-strict": "stepper"}
    looked_up: list[str] = []

    def owner(model: str) -> str:
        looked_up.append(model)
        return owners.get(model, model)

    clock = [0.0]
    monkeypatch.setattr(engines, "_now", lambda: clock[0])
    pool = EnginePool(engine, "stepper", 0, weights_owner=owner)
    scheduler = InferenceScheduler(pool, Limits(rows=8, tokens=10_000, aging_s=30))
    futures = [
        future
        for model, text in [
            ("stepper", "a"),
            ("stepper-terse", "b"),
            ("stepper-strict", "c"),
            ("stepper-terse", "d"),
        ]
        for future in scheduler.submit_generate(
            model, [prompt(text)], GREEDY, priority=Priority.BATCH, tenant="t"
        )
    ]
    assert [g.text for g in scheduler.results(futures)] == ["A", "B", "C", "D"]
    assert engine.batches == [["a", "b", "c", "d"]]
    assert looked_up == ["stepper-terse", "stepper-strict"]  # once per name
    # A name registered again for other weights is seen once what the pool remembered is stale.
    owners["stepper-terse"] = "stepper-terse"
    assert pool.serving_name("stepper-terse") == "stepper"
    clock[0] += engines.OWNER_SECONDS
    assert pool.serving_name("stepper-terse") == "stepper-terse"
