"""Runs judging jobs, fusing the items of every compatible queued job into shared engine batches.

A worker that takes one judging job also claims the other queued judging jobs of its model that
decode the same way (temperature, max_tokens, verdict mode), and keeps admitting new ones between
batches. Each engine batch holds up to ``batch_size`` calls (both orders of an item included) drawn
from the jobs in claim order. After every batch the results and progress of each job it touched are
committed, so a retry resumes where the last attempt stopped and many small concurrent requests
cost about what one large request costs.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from app.db.tables import Job, JudgeCall, JudgmentItem
from app.engine.base import Conversation, SamplingParams
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.schemas import ItemResult
from app.judging import repository as judging_repo
from app.judging.domain import (
    CallOutput,
    ItemOutcome,
    JudgeItem,
    JudgeOptions,
    PlannedCall,
    Scale,
    TemplateSpec,
)
from app.judging.execution import MARKER_CLOSE, PlannedItem, generate_outcomes, score_outcomes
from app.judging.planning import plan_item, prompt_hash
from app.judging.results import item_result
from app.judging.service import item_from_inputs
from app.judging.swap import orders_for
from app.judging.templates import reference_prompt
from workers import outcome
from workers.context import WorkerContext
from workers.lease import LeaseKeeper

log = logging.getLogger(__name__)

JUDGE_KINDS = ("judge_pairwise", "judge_single")
# An item as a batch stored it: its row and its judge calls.
StoredItem = tuple[JudgmentItem, list[JudgeCall]]


def batch_key(model: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """Jobs with equal keys may share engine batches: same model (weights), same decoding."""
    temperature = float(params["temperature"])
    # Sampled jobs also need their own seed; greedy decoding ignores it.
    seed = params["seed"] if temperature > 0 else None
    return (
        model,
        temperature,
        int(params["max_tokens"]),
        params.get("verdict_mode", "generate"),
        seed,
        verdict_only(params),
    )


def verdict_only(params: dict[str, Any]) -> bool:
    """Whether every template of the job opens the reply with the verdict marker ("Verdict: [["): then
    the judgment is complete at the marker's closing brackets and generation stops there."""
    return all(spec.get("response_prefix") for spec in params["templates"].values())


def _described(job: Job, results: list[ItemResult]) -> str:
    """The ended job as the API shows it, with all its results (JSON)."""
    return jobs_service.job_out(job, results).model_dump_json()


def _options(params: dict[str, Any]) -> JudgeOptions:
    scale = params.get("scale") or {}
    return JudgeOptions(
        mode=params["mode"],
        swap=params["swap"],
        cot=params["cot"],
        scale=Scale(min=scale.get("min", 1), max=scale.get("max", 10)),
        seed=int(params["seed"]),
        verdict_mode=params.get("verdict_mode", "generate"),
    )


@dataclass
class PendingItem:
    id: int
    index: int
    item: JudgeItem
    template: str
    generated: list[str]
    needs_reference: bool


@dataclass
class ActiveJob:
    id: uuid.UUID
    attempts: int
    options: JudgeOptions
    templates: dict[str, TemplateSpec]
    pending: list[PendingItem]
    done: int
    failed: int = 0
    references_todo: int = 0
    touched: bool = False

    @classmethod
    def load(cls, ctx: WorkerContext, job_id: uuid.UUID, params: dict[str, Any], attempts: int) -> ActiveJob:
        reference_auto = bool(params.get("reference_auto"))
        with ctx.db.unit_of_work() as session:
            rows = judging_repo.pending_items(session, job_id)
            done = judging_repo.count_done(session, job_id)
            failed = judging_repo.count_failed(session, job_id)
            pending = [
                PendingItem(
                    id=row.id,
                    index=row.index,
                    item=item_from_inputs(row.inputs),
                    template=row.inputs["template"],
                    generated=list(row.generated_references or []),
                    needs_reference=reference_auto and row.inputs.get("references") is None,
                )
                for row in rows
            ]
        return cls(
            id=job_id,
            attempts=attempts,
            options=_options(params),
            templates={name: TemplateSpec(**spec) for name, spec in params["templates"].items()},
            pending=pending,
            done=done,
            failed=failed,
        )

    def reference_units(self) -> list[tuple[PendingItem, int]]:
        """(item, turn) pairs whose reference answer is next to write (turn by turn, in context)."""
        return [
            (p, len(p.generated))
            for p in self.pending
            if p.needs_reference and len(p.generated) <= p.item.judged_turn
        ]


@dataclass
class JudgeUnit:
    job: ActiveJob
    pending: PendingItem
    calls: list[PlannedCall] = field(default_factory=list)


class JudgeBatcher:
    def __init__(self, ctx: WorkerContext, lease: LeaseKeeper, model: str, params: dict[str, Any]) -> None:
        self.ctx = ctx
        self.model = model
        self.key = batch_key(model, params)
        self.verdict_mode = params.get("verdict_mode", "generate")
        self.lease = lease
        self.batch_size = ctx.settings.batch_size
        self.sampling = SamplingParams(
            temperature=float(params["temperature"]),
            max_tokens=int(params["max_tokens"]),
            seed=params["seed"],
            # A verdict-only reply is complete at the marker's closing brackets.
            stop=(MARKER_CLOSE,) if verdict_only(params) else (),
        )
        self.jobs: dict[uuid.UUID, ActiveJob] = {}

    # -- membership ------------------------------------------------------------------------------

    def add(self, job_id: uuid.UUID, params: dict[str, Any], attempts: int) -> None:
        self.lease.hold(job_id)
        self.jobs[job_id] = ActiveJob.load(self.ctx, job_id, params, attempts)

    def _calls_in_hand(self) -> int:
        def orders(o: JudgeOptions) -> int:
            return len(orders_for(o.mode, o.swap, o.seed, 0))

        return sum(len(j.pending) * orders(j.options) for j in self.jobs.values())

    def admit(self) -> None:
        """Claim compatible queued jobs while fewer than two batches of work are in hand, so other
        workers of the same model still get their share."""
        if self._calls_in_hand() >= 2 * self.batch_size:
            return
        with self.ctx.db.unit_of_work() as session:
            candidates = [
                (job.id, dict(job.params))
                for job in jobs_repo.queued_candidates(session, self.ctx.queue_name, JUDGE_KINDS, limit=64)
                if batch_key(job.model, job.params) == self.key
            ]
        fused: list[tuple[uuid.UUID, int]] = []
        for job_id, params in candidates:
            if self._calls_in_hand() >= 2 * self.batch_size:
                break
            with self.ctx.db.unit_of_work() as session:
                claimed = lifecycle.claim(
                    session, self.ctx.queue, job_id, self.ctx.worker_id, self.ctx.settings.job_lease_seconds
                )
                attempts = claimed.attempts if claimed is not None else 0
            if claimed is not None:
                log.info("fused job %s into the running batch", job_id)
                self.add(job_id, params, attempts)
                fused.append((job_id, attempts - 1))  # (the delivery made before this claim)
        # Their own deliveries are moot now: off the queue with them.
        try:
            self.ctx.queue.withdraw(self.ctx.queue_name, fused)
        except Exception:
            log.warning("could not withdraw the deliveries of %d fused job(s)", len(fused), exc_info=True)

    def _drop_interrupted(self) -> None:
        """Between batches: end cancelled jobs, forget jobs another worker took over."""
        ids = list(self.jobs)
        with self.ctx.db.unit_of_work() as session:
            cancelled = jobs_repo.cancel_requested_among(session, ids)
            for job_id in cancelled:
                outcome.end_in(self.ctx, session, job_id, "cancelled", None)
        for job_id in ids:
            if job_id in cancelled or self.lease.is_lost(job_id):
                if job_id not in cancelled:
                    log.warning("job %s: lease lost to another worker; dropping it", job_id)
                self._forget(job_id)

    def _forget(self, job_id: uuid.UUID) -> None:
        self.jobs.pop(job_id, None)
        self.lease.release(job_id)

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        # The worker's engine, holding this model's weights (a model trained from the worker's own is
        # served by swapping weights in place).
        self.engine = self.ctx.engine_for(self.model)
        while self.jobs:
            self._drop_interrupted()
            if self.ctx.shutdown.is_set():
                self.hand_back_all()
                return
            self.admit()
            if not self._reference_batch():
                self._judge_batch()
            # A job ends as soon as its last item is judged, not when the fused stream of jobs dries
            # up: under steady load new jobs keep joining the batch.
            self._finish_completed()

    def fail_all(self, error: str) -> None:
        """An engine or database failure: every held job is retried, or fails after its last attempt."""
        with self.ctx.db.unit_of_work() as session:
            for job in self.jobs.values():
                outcome.retry_or_fail(self.ctx, session, job.id, job.attempts, error)
        for job_id in list(self.jobs):
            self._forget(job_id)

    def hand_back_all(self) -> None:
        """Graceful shutdown, between batches: finished jobs end as usual; the others go back to the
        queue with their judged items kept, for the next worker to finish."""
        self._finish_completed()
        with self.ctx.db.unit_of_work() as session:
            for job_id in self.jobs:
                outcome.hand_back(self.ctx, session, job_id)
        log.info("shutting down: handed back %d job(s)", len(self.jobs))
        for job_id in list(self.jobs):
            self._forget(job_id)

    def _finish_completed(self) -> None:
        """End the jobs whose every item is judged (usually ended already, with their last batch)."""
        if all(job.pending for job in self.jobs.values()):
            return
        with self.ctx.db.unit_of_work() as session:
            finished = self._end_completed(session)
        for job_id in finished:
            self._forget(job_id)

    def _end_completed(
        self, session: Any, judged: dict[uuid.UUID, list[StoredItem]] | None = None
    ) -> list[uuid.UUID]:
        """End, in the caller's transaction, the jobs whose every item is judged; the caller forgets them
        once it commits. ``judged`` holds the items the caller has just stored, by job: a job whose
        every item is there is announced with its results (its `?wait=` request then answers without
        reading them back)."""
        finished = [job for job in self.jobs.values() if not job.pending]
        for job in finished:
            stored = (judged or {}).get(job.id, [])
            describe = None
            if stored and len(stored) == job.done:
                results = sorted((item_result(row, calls) for row, calls in stored), key=lambda r: r.index)
                describe = functools.partial(_described, results=results)
            outcome.end_in(self.ctx, session, job.id, "succeeded", None, describe)
        return [job.id for job in finished]

    def _reference_batch(self) -> bool:
        """One batch of reference answers (reference: {"auto": true}); False when none are due."""
        units = [(job, p, turn) for job in self.jobs.values() for p, turn in job.reference_units()]
        if not units:
            return False
        units = units[: self.batch_size]
        prompts: list[Conversation] = [
            reference_prompt(p.item, turn, p.generated[:turn]) for _, p, turn in units
        ]
        outputs = self.engine.generate(prompts, dataclasses.replace(self.sampling, temperature=0.0, stop=()))
        with self.ctx.db.unit_of_work() as session:
            rows = {row.id: row for row in judging_repo.items_by_id(session, [p.id for _, p, _ in units])}
            for (job, p, turn), prompt, gen in zip(units, prompts, outputs, strict=True):
                text = gen.text.strip()
                output = CallOutput("reference", text, gen.tokens_in, gen.tokens_out, gen.latency_ms)  # type: ignore[arg-type]
                judging_repo.save_reference(session, rows[p.id], turn, output, prompt_hash(prompt))
                p.generated = p.generated[:turn] + [text]
                job.touched = True
            self._record_progress(session, "references")
        return True

    def _next_judge_units(self) -> list[JudgeUnit]:
        units: list[JudgeUnit] = []
        budget = self.batch_size
        for job in self.jobs.values():
            for p in job.pending:
                if p.needs_reference and len(p.generated) <= p.item.judged_turn:
                    continue  # its reference is not written yet
                item = (
                    dataclasses.replace(p.item, references=tuple(p.generated))
                    if p.needs_reference
                    else p.item
                )
                calls = plan_item(item, job.templates[p.template], job.options, p.index)
                if units and len(calls) > budget:
                    return units
                units.append(JudgeUnit(job, p, calls))
                budget -= len(calls)
                if budget <= 0:
                    return units
        return units

    def _judge_batch(self) -> bool:
        units = self._next_judge_units()
        if not units:
            return False
        planned = [PlannedItem(unit.calls, unit.job.options) for unit in units]
        # Every job in a batch shares the verdict mode (it is part of the batch key).
        if self.verdict_mode == "logprobs":
            outcomes = score_outcomes(self.engine, planned)
        else:
            outcomes = generate_outcomes(self.engine, planned, self.sampling)
        judged: dict[uuid.UUID, list[StoredItem]] = {}
        with self.ctx.db.unit_of_work() as session:
            rows = {row.id: row for row in judging_repo.items_by_id(session, [u.pending.id for u in units])}
            for unit, outcome in zip(units, outcomes, strict=True):
                hashes: dict[str, str] = {c.order: c.prompt_hash for c in unit.calls}
                row = rows[unit.pending.id]
                calls = judging_repo.save_outcome(session, row, outcome, hashes)
                judged.setdefault(unit.job.id, []).append((row, calls))
                unit.job.pending.remove(unit.pending)
                unit.job.done += 1
                unit.job.failed += outcome.status == "error"
                unit.job.touched = True
            self._record_progress(session, "judging")
            # A job ends in the transaction that records its last results: its waiting client hears
            # of it one commit sooner.
            finished = self._end_completed(session, judged)
        for job_id in finished:
            self._forget(job_id)
        self._record_metrics(units, outcomes)
        return True

    def _record_metrics(self, units: list[JudgeUnit], outcomes: list[ItemOutcome]) -> None:
        """A committed batch's judgments, parse errors and item outcomes, per mode (for /metrics)."""
        for mode in sorted({unit.job.options.mode for unit in units}):
            judged = [o for u, o in zip(units, outcomes, strict=True) if u.job.options.mode == mode]
            orders = [order for o in judged for order in o.orders]
            self.ctx.metrics.record_judgments(
                self.model,
                mode,
                judgments=len(orders),
                parse_errors=sum(order.error is not None for order in orders),
                items=Counter(o.status for o in judged),
            )

    def _record_progress(self, session: Any, stage: str) -> None:
        for job in self.jobs.values():
            if job.touched:
                lifecycle.record_progress(session, self.ctx.queue, job.id, job.done, stage, failed=job.failed)
                job.touched = False
