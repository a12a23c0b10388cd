"""The inference scheduler: the only code in a worker that calls an engine.

Judging items, prompt-optimization calls and self-reward generations all hand it *requests* (one
prompt each) and get a future per request. A scheduler thread builds engine batches with the policy
of :mod:`app.scheduling.policy` (priority classes with aging, tenant fair shares, a token budget per
batch) and runs them. Between decode steps of a running batch it:

- runs more urgent batches first (a waiting client's judgment preempts a long job's generation; the
  preempted batch keeps its key/value memory and resumes where it was);
- stops the rows of cancelled jobs (their futures raise :class:`RequestCancelled` at once);
- hands each finished row's output to its future as soon as the row is done.

A request that cannot run (its prompt does not fit the model's context, a tokenizer error) fails
alone: it is refused before it joins a batch, and a batch that fails is re-run one request at a time so
that only the request at fault fails. Error messages name only the request's own sizes.

Without :meth:`start` the scheduler runs inline: whoever waits on a future runs batches in its own
thread (tests, the in-process tools).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from app.engine.base import (
    BatchControl,
    Conversation,
    Engine,
    EngineError,
    Generation,
    LabelDistribution,
    SamplingParams,
)
from app.metrics.recorder import WorkerMetrics
from app.scheduling.policy import FairShare, Limits, Priority, Waiting, effective_class, next_batch
from workers.engines import EngineBusy, EnginePool
from workers.handover import HandOver

log = logging.getLogger(__name__)

T = TypeVar("T")

# Nested (preempting) batches at most this deep: interactive inside batch inside background.
_MAX_DEPTH = 3


class RequestCancelled(Exception):
    """The request's job was cancelled: it left the queue, or its row stopped mid-decode."""


class SchedulerStopped(Exception):
    """The worker is stopping: the request did not run (or was stopped); its job is handed back."""


@dataclass(eq=False)
class _Request:
    id: int
    model: str
    prompt: Conversation
    sampling: SamplingParams | None  # generation
    labels: tuple[str, ...] | None  # label scoring
    priority: Priority
    tenant: str
    job_id: uuid.UUID | None
    tokens: int
    submitted: float
    future: Future[Any]

    @property
    def group(self) -> tuple[Any, ...]:
        if self.sampling is not None:
            return (self.model, "generate", self.sampling)
        return (self.model, "score", self.labels)

    def waiting(self) -> Waiting:
        return Waiting(self.id, self.priority, self.tenant, self.group, self.tokens, self.submitted)


def _settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Resolve a future once; a second resolution (a cancel racing a finished row) is ignored."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class InferenceScheduler:
    """Takes requests for the models of ``engines`` and runs them in batches within ``limits``."""

    def __init__(self, engines: EnginePool, limits: Limits, metrics: WorkerMetrics | None = None) -> None:
        self.engines = engines
        self.limits = limits
        self.metrics = metrics
        self._cond = threading.Condition()
        self._waiting: dict[int, _Request] = {}
        self._running: dict[int, _Request] = {}
        self._stop_rows: set[int] = set()
        self._fair = FairShare()
        self._ids = itertools.count()
        self._stack: list[Engine] = []  # engines of the batches running now, outermost first
        self._thread: threading.Thread | None = None
        self._stopped = False
        # Requests for engines that batch themselves (vLLM) go straight to them (workers/handover.py).
        self._handover = HandOver(engines.peek, _settle)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Run batches in a thread of the scheduler's own from now on."""
        self._thread = threading.Thread(target=self._loop, name="inference-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new requests, fail waiting ones and stop running rows (SchedulerStopped), and wait
        for the thread to leave its batch."""
        with self._cond:
            self._stopped = True
            for request in self._waiting.values():
                _settle(request.future, error=SchedulerStopped("the worker is stopping"))
            self._waiting.clear()
            for request in self._running.values():
                self._stop_rows.add(request.id)
                _settle(request.future, error=SchedulerStopped("the worker is stopping"))
            self._cond.notify_all()
        self._handover.stop(SchedulerStopped("the worker is stopping"))
        if self._thread is not None:
            self._thread.join(timeout)

    def has_serving_work(self) -> bool:
        """Whether a client's or a judging job's request waits or runs (long jobs' own calls aside):
        what trainings on this host pause for (app/training/yielding.py)."""
        with self._cond:
            requests = [*self._waiting.values(), *self._running.values()]
        return any(r.priority != Priority.BACKGROUND for r in requests)

    @property
    def threaded(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- submission ------------------------------------------------------------------------------

    def submit_generate(
        self,
        model: str,
        prompts: Sequence[Conversation],
        sampling: SamplingParams,
        *,
        priority: Priority,
        tenant: str,
        job_id: uuid.UUID | None = None,
    ) -> list[Future[Generation]]:
        """One future per prompt, each resolving to its Generation (queue_ms set)."""
        return self._submit(model, prompts, sampling, None, sampling.max_tokens, priority, tenant, job_id)

    def submit_scores(
        self,
        model: str,
        prompts: Sequence[Conversation],
        labels: Sequence[str],
        *,
        priority: Priority,
        tenant: str,
        job_id: uuid.UUID | None = None,
    ) -> list[Future[LabelDistribution]]:
        """One future per prompt, each resolving to its label distribution."""
        extra = max((len(label) for label in labels), default=1)  # label tokens: at most one per character
        return self._submit(model, prompts, None, tuple(labels), extra, priority, tenant, job_id)

    def _submit(
        self,
        model: str,
        prompts: Sequence[Conversation],
        sampling: SamplingParams | None,
        labels: tuple[str, ...] | None,
        new_tokens: int,
        priority: Priority,
        tenant: str,
        job_id: uuid.UUID | None,
    ) -> list[Future[Any]]:
        futures: list[Future[Any]] = []
        now = time.monotonic()
        # Names registered for the same weights share their engine, and their requests share batches.
        model = self.engines.serving_name(model)
        sized = [(prompt, self._size(model, prompt, new_tokens)) for prompt in prompts]
        with self._cond:
            for prompt, (tokens, problem) in sized:
                future: Future[Any] = Future()
                futures.append(future)
                if self._stopped:
                    _settle(future, error=SchedulerStopped("the worker is stopping"))
                    continue
                if problem is not None:
                    _settle(future, error=EngineError(problem))
                    continue
                if self._handover.submit(model, prompt, sampling, labels, priority, job_id, future):
                    continue
                request = _Request(
                    id=next(self._ids),
                    model=model,
                    prompt=prompt,
                    sampling=sampling,
                    labels=labels,
                    priority=priority,
                    tenant=tenant,
                    job_id=job_id,
                    tokens=tokens,
                    submitted=now,
                    future=future,
                )
                self._waiting[request.id] = request
            self._cond.notify_all()
        return futures

    def _size(self, model: str, prompt: Conversation, new_tokens: int) -> tuple[int, str | None]:
        """The request's key/value tokens (prompt + new), and why it cannot run, if it cannot."""
        held = self.engines.peek(model)
        # A model not loaded yet is measured with the worker's own tokenizer (its context unknown).
        engine = held or self.engines.main
        count = getattr(engine, "count_tokens", None)
        try:
            if count is None:
                # No tokenizer at hand: a token covers about 3 characters or more of English text.
                return sum(len(m["content"]) for m in prompt) // 3 + 16 + new_tokens, None
            prompt_tokens = int(count(prompt))
        except Exception as exc:  # noqa: BLE001 - a prompt the tokenizer refuses fails alone
            return 0, f"the prompt could not be tokenized: {type(exc).__name__}: {exc}"
        limit = getattr(held, "context_length", None)
        if isinstance(limit, int) and prompt_tokens + new_tokens > limit:
            return 0, (
                f"the prompt has {prompt_tokens} tokens; with {new_tokens} new tokens it exceeds the "
                f"model's context of {limit} tokens"
            )
        return prompt_tokens + new_tokens, None

    # -- waiting ---------------------------------------------------------------------------------

    def wait(self, futures: Collection[Future[Any]], timeout: float | None = None) -> set[Future[Any]]:
        """Block until at least one of ``futures`` is done (or ``timeout``); returns those done. Inline,
        runs batches in this thread until one is."""
        if not futures:
            return set()
        if self.threaded:
            done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
            return set(done)
        while not any(f.done() for f in futures):
            if not self._run_next(None):
                break
        if not any(f.done() for f in futures) and self._handover.holds(futures):
            wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return {f for f in futures if f.done()}

    def results(self, futures: Sequence[Future[T]]) -> list[T]:
        """Every future's result, in order; raises the first failure (after all have ended)."""
        pending = set(futures)
        while pending:
            done = self.wait(pending)
            if not done and not self.threaded:
                raise RuntimeError("requests left waiting with nothing to run")
            pending -= done
        return [f.result() for f in futures]

    # -- cancel ----------------------------------------------------------------------------------

    def cancel(self, job_id: uuid.UUID) -> int:
        """Drop the job's waiting requests and stop its running rows at the next decode step; their
        futures raise RequestCancelled now. Returns how many requests it touched."""
        touched = 0
        with self._cond:
            for rid, request in list(self._waiting.items()):
                if request.job_id == job_id:
                    del self._waiting[rid]
                    _settle(request.future, error=RequestCancelled(f"job {job_id} was cancelled"))
                    touched += 1
            for rid, request in self._running.items():
                if request.job_id == job_id:
                    self._stop_rows.add(rid)
                    _settle(request.future, error=RequestCancelled(f"job {job_id} was cancelled"))
                    touched += 1
        return touched + self._handover.cancel(job_id, RequestCancelled(f"job {job_id} was cancelled"))

    # -- running ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
            try:
                self._run_next(None)
            except Exception:  # the loop must survive anything a batch throws
                log.exception("scheduler: a batch failed outside its requests")

    def _servable(self, model: str) -> bool:
        """Whether ``model`` can run now without disturbing a batch in progress."""
        if not self._stack:
            return True
        return self.engines.peek(model) is not None

    def _run_next(self, more_urgent_than: int | None) -> bool:
        """Pick and run one batch; False when nothing qualified."""
        with self._cond:
            now = time.monotonic()
            candidates = [r.waiting() for r in self._waiting.values() if self._servable(r.model)]
            picked = next_batch(candidates, self.limits, now, self._fair.usage(now), more_urgent_than)
            requests = [self._waiting.pop(w.id) for w in picked]
            for request in requests:
                self._running[request.id] = request
            # The batch's class, aging included: what a batch run inside it must beat.
            level = min((effective_class(w, now, self.limits.aging_s) for w in picked), default=0)
        if not requests:
            return False
        try:
            self._execute(requests, level)
        finally:
            with self._cond:
                for request in requests:
                    self._running.pop(request.id, None)
                    self._stop_rows.discard(request.id)
        return True

    def _execute(self, requests: list[_Request], level: int) -> None:
        head = requests[0]
        try:
            engine = self.engines.get(head.model, self._stack)
        except EngineBusy:
            with self._cond:  # back in line: it runs when the busy engine is free
                for request in requests:
                    self._waiting[request.id] = request
            return
        except Exception as exc:  # noqa: BLE001 - a model that cannot load fails its requests
            for request in requests:
                _settle(request.future, error=EngineError(f"cannot serve model {head.model!r}: {exc}"))
            return
        started = time.monotonic()
        queue_ms = [(started - r.submitted) * 1000 for r in requests]

        def row_done(index: int, output: Generation) -> None:
            _settle(requests[index].future, dataclasses.replace(output, queue_ms=queue_ms[index]))

        def between() -> Collection[int]:
            if len(self._stack) < _MAX_DEPTH:
                # More urgent work first, in this thread, while this batch waits with its memory kept.
                # What it must beat is the class of the rows still running (a client's rows that are
                # done no longer hold the rest of the batch above a waiting client).
                beat = self._live_class(requests, level)
                for _ in range(4):
                    if not self._run_next(beat):
                        break
            with self._cond:
                return {i for i, r in enumerate(requests) if r.id in self._stop_rows}

        control = BatchControl(between_steps=between, row_done=row_done)
        self._stack.append(engine)
        try:
            outputs = self._call(engine, requests, control)
        except Exception as exc:  # noqa: BLE001 - isolated below
            self._stack.pop()
            self._failed(requests, level, exc)
            return
        except BaseException:
            self._stack.pop()
            raise
        self._stack.pop()
        outputs = [dataclasses.replace(o, queue_ms=q) for o, q in zip(outputs, queue_ms, strict=True)]
        elapsed = time.monotonic() - started
        for request, output in zip(requests, outputs, strict=True):
            _settle(request.future, output)
        now = time.monotonic()
        for request in requests:
            self._fair.charge(request.tenant, request.tokens, now)
        if self.metrics is not None:
            operation = "generate" if head.sampling is not None else "label_logprobs"
            try:
                self.metrics.record_engine_call(head.model, operation, len(requests), elapsed)
            except Exception:  # noqa: BLE001 - metrics never fail a batch
                log.debug("could not record engine metrics", exc_info=True)

    def _live_class(self, requests: list[_Request], level: int) -> int:
        """The most urgent effective class among the batch's rows still running (``level`` if none)."""
        now = time.monotonic()
        with self._cond:
            live = [r for r in requests if not r.future.done() and r.id not in self._stop_rows]
        return min((effective_class(r.waiting(), now, self.limits.aging_s) for r in live), default=level)

    @staticmethod
    def _call(engine: Engine, requests: list[_Request], control: BatchControl) -> list[Any]:
        """One engine call for the batch (with ``control`` where the backend takes it)."""
        head = requests[0]
        prompts = [r.prompt for r in requests]
        extra: dict[str, Any] = {"control": control} if getattr(engine, "supports_control", False) else {}
        if head.sampling is not None:
            return list(engine.generate(prompts, head.sampling, **extra))
        assert head.labels is not None
        return list(engine.label_logprobs(prompts, head.labels, **extra))

    def _failed(self, requests: list[_Request], level: int, exc: Exception) -> None:
        """A batch raised: re-run its requests one at a time, so only the one at fault fails. When the
        first of them fails alone with the same engine fault (not an EngineError about its input), the
        engine itself is failing: every request waiting for that model fails with it at once, rather
        than each paying for its own failed call."""
        live = [r for r in requests if not r.future.done()]
        if len(live) <= 1:
            for request in live:
                _settle(request.future, error=exc)
            return
        log.warning("batch of %d failed (%s); re-running its requests one by one", len(live), exc)
        first, rest = live[0], live[1:]
        self._execute([first], level)
        again = first.future.exception() if first.future.done() else None
        if again is not None and not isinstance(again, EngineError) and str(again) == str(exc):
            log.error("engine for %s is failing (%s); failing its waiting requests", first.model, exc)
            with self._cond:
                doomed = [r for r in self._waiting.values() if r.model == first.model]
                for request in doomed:
                    del self._waiting[request.id]
            for request in [*rest, *doomed]:
                _settle(request.future, error=exc)
            return
        for request in rest:
            with self._cond:
                if request.id in self._stop_rows:
                    continue
            self._execute([request], level)
