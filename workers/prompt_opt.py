"""Prompt-optimization jobs in the worker: the ProTeGi search with its model calls run through the
prediction cache, a budget meter and bounded retries, and every completed step committed.

A retried job (worker killed, lease expired) loads the last checkpoint and continues from there; the
model calls of an interrupted step come back from the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from app.engine.base import Conversation, Engine, SamplingParams
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.prompt_opt import repository as po_repo
from app.prompt_opt import service as po_service
from app.prompt_opt.budget import Meter, estimate_tokens
from app.prompt_opt.data import example_hash
from app.prompt_opt.domain import BudgetExhausted, Example, SearchCancelled, Usage
from app.prompt_opt.schemas import PromptOptimizationRequest
from app.prompt_opt.search import (
    CandidateRecord,
    ProTeGi,
    RoundRecord,
    SearchState,
    final_eval_calls,
)
from app.prompt_opt.tasks import Task, build_task
from app.scheduling.policy import Priority
from workers import outcome
from workers.context import WorkerContext
from workers.lease import LeaseKeeper
from workers.scheduler import RequestCancelled, SchedulerStopped

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelCallFailed(RuntimeError):
    """A model call kept failing after its retries: the job fails with this message."""


class LeaseLost(RuntimeError):
    """Another worker took the job over (our lease expired); stop without writing."""


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CachedModels:
    """``SearchModels`` for a worker: cached, metered, retried, cancellable model calls."""

    def __init__(
        self,
        ctx: WorkerContext,
        lease: LeaseKeeper,
        job_id: uuid.UUID,
        request: PromptOptimizationRequest,
        task: Task,
        task_engine: Engine,
        optimizer_engine: Engine,
        meter: Meter,
        tenant: str,
    ) -> None:
        self.ctx = ctx
        self.lease = lease
        self.job_id = job_id
        # Whose cached outputs the job may reuse: its tenant's only (another tenant's hit would tell it
        # what that tenant ran), unless the operator shares the cache (None: every tenant's).
        self.cache_tenant = None if ctx.settings.prediction_cache_scope == "operator" else tenant
        self.task = task
        self.task_engine = task_engine
        self.optimizer_engine = optimizer_engine
        self.meter = meter
        self.mode = request.task_decoding.mode
        self.task_sampling = SamplingParams(temperature=0.0, max_tokens=request.task_decoding.max_tokens)
        opt = request.optimizer_decoding
        self.optimizer_sampling = SamplingParams(
            temperature=opt.temperature, top_p=opt.top_p, max_tokens=opt.max_tokens, seed=request.seed
        )
        self.seed = request.seed
        self.description = request.task_description
        self.retries = ctx.settings.model_call_retries
        self.chunk = max(1, ctx.settings.batch_size * 4)

    # -- SearchModels --------------------------------------------------------------------------
    def set_phase(self, phase: str) -> None:
        self.meter.phase = phase

    def predict(self, prompts: Sequence[str], examples: Sequence[Example]) -> list[list[str | None]]:
        convs = [self.task.conversation(p, ex) for p in prompts for ex in examples]
        if self.mode == "logprobs":
            decoding: dict[str, Any] = {"mode": "logprobs", "labels": list(self.task.labels)}
        else:
            decoding = {"mode": "generate", "temperature": 0.0, "max_tokens": self.task_sampling.max_tokens}
        prompt_hashes, example_hashes = [_hash(p) for p in prompts], [example_hash(ex) for ex in examples]
        meta = [(ph, eh) for ph in prompt_hashes for eh in example_hashes]
        raws = self._run(self.task_engine, convs, decoding, [None] * len(convs), meta, self._task_call)
        labels = [self._label(raw) for raw in raws]
        n = len(examples)
        return [labels[i * n : (i + 1) * n] for i in range(len(prompts))]

    def complete(self, requests: Sequence[tuple[Conversation, str]]) -> list[str]:
        convs = [self._with_description(conv) for conv, _ in requests]
        s = self.optimizer_sampling
        decoding = {
            "mode": "generate",
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        tags = [f"{self.seed}:{tag}" for _, tag in requests]
        meta = [(_hash(conv), None) for conv in convs]
        return self._run(self.optimizer_engine, convs, decoding, tags, meta, self._optimizer_call)

    def _with_description(self, conv: Conversation) -> Conversation:
        """The optimizer also learns what the task is (one system message: some chat templates
        accept no second one)."""
        note = f"The task the instruction is for: {self.description}"
        if conv and conv[0]["role"] == "system":
            return [{"role": "system", "content": f"{conv[0]['content']}\n{note}"}, *conv[1:]]
        return [{"role": "system", "content": note}, *conv]

    # -- engine calls ----------------------------------------------------------------------------
    def _label(self, raw: str) -> str | None:
        if self.mode != "logprobs":
            return self.task.prediction(raw)
        probs: dict[str, float] = json.loads(raw)
        if not probs:
            return None
        best = max(probs.values())
        leaders = [label for label, p in probs.items() if p == best]
        return leaders[0] if len(leaders) == 1 else None

    def _task_call(self, convs: list[Conversation]) -> list[tuple[str, int, int]]:
        if self.mode == "logprobs":
            dists = self.task_engine.label_logprobs(convs, list(self.task.labels))
            return [(json.dumps(d.probs, sort_keys=True), d.tokens_in, 0) for d in dists]
        gens = self.task_engine.generate(convs, self.task_sampling)
        return [(g.text, g.tokens_in, g.tokens_out) for g in gens]

    def _optimizer_call(self, convs: list[Conversation]) -> list[tuple[str, int, int]]:
        gens = self.optimizer_engine.generate(convs, self.optimizer_sampling)
        return [(g.text, g.tokens_in, g.tokens_out) for g in gens]

    def _run(
        self,
        engine: Engine,
        convs: list[Conversation],
        decoding: dict[str, Any],
        tags: Sequence[str | None],
        meta: Sequence[tuple[str, str | None]],
        call: Callable[[list[Conversation]], list[tuple[str, int, int]]],
    ) -> list[str]:
        model = engine.model_name
        keys = [self._cache_key(model, decoding, conv, tag) for conv, tag in zip(convs, tags, strict=True)]
        with self.ctx.db.unit_of_work() as session:
            found = {k: v.raw for k, v in po_repo.cached_outputs(session, keys).items()}
        todo: dict[str, int] = {}  # key -> first position
        for i, key in enumerate(keys):
            if key not in found and key not in todo:
                todo[key] = i
        self.meter.hit(len(keys) - len(todo))
        pending = list(todo.items())
        max_new = 0 if decoding["mode"] == "logprobs" else int(decoding["max_tokens"])
        for start in range(0, len(pending), self.chunk):
            self._check_interrupted()
            chunk = pending[start : start + self.chunk]
            estimates = [estimate_tokens(sum(len(m["content"]) for m in convs[i]), max_new) for _, i in chunk]
            allowed = self.meter.allowance(estimates)
            run = chunk[:allowed]
            if run:
                batch = [convs[i] for _, i in run]
                outputs = self._with_retries(model, functools.partial(call, batch))
                entries = [
                    po_repo.CacheEntry(
                        key, self.cache_tenant, model, meta[i][0], meta[i][1], decoding, raw, t_in, t_out
                    )
                    for (key, i), (raw, t_in, t_out) in zip(run, outputs, strict=True)
                ]
                self.meter.charge(len(run), sum(t_in + t_out for _, t_in, t_out in outputs))
                with self.ctx.db.unit_of_work() as session:
                    po_repo.store_outputs(session, entries)
                    self.save_usage(session)
                found.update((e.key, e.raw) for e in entries)
            if allowed < len(chunk):
                raise BudgetExhausted
        return [found[k] for k in keys]

    def _cache_key(self, model: str, decoding: dict[str, Any], conv: Conversation, tag: str | None) -> str:
        # Shared entries keep the key they had before the cache was scoped, so they stay valid.
        scoped = [model, decoding, conv, tag]
        return _hash(scoped if self.cache_tenant is None else [self.cache_tenant, *scoped])

    def _with_retries(self, model: str, fn: Callable[[], T]) -> T:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except RequestCancelled:
                raise SearchCancelled from None
            except SchedulerStopped:
                raise outcome.ShuttingDown from None
            except Exception as exc:  # noqa: BLE001 - any backend failure is retried, then reported
                last = exc
                log.warning("model call to %s failed (attempt %d): %s", model, attempt + 1, exc)
                if attempt < self.retries:
                    time.sleep(min(30.0, self.ctx.settings.model_retry_backoff_seconds * 2**attempt))
        raise ModelCallFailed(
            f"model {model!r} failed {self.retries + 1} times in a row: {type(last).__name__}: {last}"
        )

    def _check_interrupted(self) -> None:
        if self.lease.is_lost(self.job_id):
            raise LeaseLost
        with self.ctx.db.unit_of_work() as session:
            if jobs_repo.is_cancel_requested(session, self.job_id):
                raise SearchCancelled
        if self.ctx.shutdown.is_set():
            raise outcome.ShuttingDown

    def save_usage(self, session: Any) -> None:
        u = self.meter.usage
        po_repo.save_usage(session, self.job_id, u.calls, u.tokens, u.cache_hits)
        jobs_repo.set_detail(session, self.job_id, {"usage": self.meter.summary()})


class PgStore:
    """``SearchStore`` writing the checkpoint, candidates, rounds and job progress."""

    def __init__(self, models: CachedModels, rounds: int) -> None:
        self.models = models
        self.db = models.ctx.db
        self.job_id = models.job_id
        self.rounds = rounds

    def save(self, step: str, state: SearchState, records: Sequence[CandidateRecord]) -> None:
        if self.models.lease.is_lost(self.job_id):
            raise LeaseLost
        with self.db.unit_of_work() as session:
            po_repo.save_run(session, self.job_id, step, state.to_json())
            po_repo.upsert_candidates(session, self.job_id, [_candidate_row(r) for r in records])
            lifecycle.record_progress(
                session,
                self.models.ctx.queue,
                self.job_id,
                state.round,
                _stage(state, self.rounds),
                total=self.rounds,
            )
            self.models.save_usage(session)

    def save_round(self, record: RoundRecord) -> None:
        with self.db.unit_of_work() as session:
            po_repo.save_round(
                session,
                self.job_id,
                {
                    "round": record.round,
                    "beam": record.beam,
                    "best_key": record.best_key,
                    "best_dev_score": record.best_dev_score,
                    "details": {**record.details, "usage": self.models.meter.summary()},
                },
            )


def _stage(state: SearchState, rounds: int) -> str:
    if state.phase in ("final", "done"):
        return "final evaluation" if state.phase == "final" else "done"
    return f"round {min(state.round + 1, rounds)}/{rounds}: {state.phase}"


def _candidate_row(record: CandidateRecord) -> dict[str, Any]:
    c = record.candidate
    return {
        "key": c.key,
        "round": c.round,
        "text": c.text,
        "parent_key": c.parent,
        "origin": c.origin,
        "gradient": c.gradient,
        "rejected": record.rejected,
        "pulls": record.pulls or None,
        "examples": record.examples or None,
        "estimate": record.estimate,
        "minibatch_score": record.minibatch_score,
        "dev_score": record.dev_score,
        "in_beam": record.in_beam,
    }


def run_prompt_opt(
    ctx: WorkerContext,
    lease: LeaseKeeper,
    job_id: uuid.UUID,
    attempts: int,
    cancel: threading.Event | None = None,
) -> str:
    """Run (or resume) a prompt-optimization job to its end; returns what happened, for RQ's logs.
    (``cancel`` is unused: with no child process, a cancel reaches the job's calls through the
    scheduler.)"""
    lease.hold(job_id)
    try:
        return _run(ctx, lease, job_id, attempts)
    finally:
        lease.release(job_id)


def _run(ctx: WorkerContext, lease: LeaseKeeper, job_id: uuid.UUID, attempts: int) -> str:
    with ctx.db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        if job is None:
            return "missing"
        request = PromptOptimizationRequest.model_validate(job.params)
        loaded = po_service.load_splits(session, request, job.tenant)
        run = po_repo.get_run(session, job_id)
        state = SearchState.from_json(run.state) if run is not None and run.state else SearchState()
        usage = Usage(run.calls, run.tokens, run.cache_hits) if run is not None else Usage()
    initial = po_service.initial_prompt_text(request)
    task = build_task(request.task_type, po_service.task_labels(request))
    budget = request.budget.domain()
    reserve_calls = final_eval_calls(len(loaded.splits.dev), len(loaded.splits.test))
    longest = max(
        (
            sum(len(m["content"]) for m in task.conversation(initial, ex))
            for ex in [*loaded.splits.dev, *loaded.splits.test]
        ),
        default=0,
    )
    max_new = 0 if request.task_decoding.mode == "logprobs" else request.task_decoding.max_tokens
    meter = Meter(
        budget,
        reserve_calls=reserve_calls,
        reserve_tokens=reserve_calls * estimate_tokens(longest * 3 // 2, max_new),
        usage=usage,
    )
    task_model = job.model
    optimizer_model = request.optimizer_model or task_model
    models = CachedModels(
        ctx,
        lease,
        job_id,
        request,
        task,
        ctx.engine_for(task_model, Priority.BACKGROUND, job.tenant, job_id),
        ctx.engine_for(optimizer_model, Priority.BACKGROUND, job.tenant, job_id),
        meter,
        job.tenant,
    )
    params = request.hyperparameters.domain()
    store = PgStore(models, params.rounds)
    search = ProTeGi(
        task=task,
        initial_prompt=initial,
        splits=loaded.splits,
        params=params,
        metric=request.metric.domain(),
        models=models,
        store=store,
        seed=request.seed,
    )
    try:
        search.run(state)
    except LeaseLost:
        log.warning("job %s: lease lost to another worker; stopping", job_id)
        return "lease lost"
    except SearchCancelled:
        outcome.end(ctx, job_id, "cancelled", None)
        return "cancelled"
    except outcome.ShuttingDown:
        # The model calls made since the last checkpoint are in the prediction cache: nothing is paid
        # twice when the next worker resumes.
        with ctx.db.unit_of_work() as session:
            outcome.hand_back(ctx, session, job_id)
        return "handed back (shutdown)"
    except ModelCallFailed as exc:
        outcome.end(ctx, job_id, "failed", str(exc))
        return "failed"
    except Exception as exc:
        log.exception("prompt optimization job %s failed", job_id)
        with ctx.db.unit_of_work() as session:
            outcome.retry_or_fail(ctx, session, job_id, attempts, f"{type(exc).__name__}: {exc}")
        return "failed or retrying"
    outcome.end(ctx, job_id, "succeeded", None)
    return "succeeded"
