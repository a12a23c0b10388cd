"""Runs judging jobs: every item's judge calls go to the worker's scheduler as requests.

A worker that takes one judging job also claims other queued judging jobs of its model (a few per
tenant at a time, so one tenant's backlog cannot hide another's job) and keeps admitting new ones
while it runs. Each item's calls (both orders, or a reference answer first) are requests to the
scheduler, which batches them with every other job's, by priority (a client waiting with `?wait=`
before batch judging before long jobs' calls) and fair share between tenants. Results are committed
as items finish — at least every ``PROGRESS_ITEMS`` items or ``PROGRESS_SECONDS`` — and a job ends in
the transaction that records its last item, so a retry resumes where the last attempt stopped.

An item whose call cannot run (its prompt does not fit the model's context, say) fails alone, with
the reason; a cancelled job's requests leave the scheduler at once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import uuid
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from app.db.tables import Job, JudgeCall, JudgmentItem
from app.engine.base import Conversation, EngineError, SamplingParams
from app.jobs import kinds, lifecycle
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.schemas import ItemResult
from app.judging import cache_repository as cache_repo
from app.judging import kind as judging_kind
from app.judging import repository as judging_repo
from app.judging.cached_calls import JobCache, PlannedJudgment
from app.judging.domain import (
    CallOutput,
    ItemOutcome,
    JudgeItem,
    JudgeOptions,
    PlannedCall,
    TemplateSpec,
)
from app.judging.ending import judging_end
from app.judging.execution import (
    PlannedItem,
    generation_outcome,
    item_labels,
    score_outcome,
)
from app.judging.params import JudgingParams
from app.judging.planning import plan_item, prompt_hash
from app.judging.results import item_result
from app.judging.samples import sample_seed
from app.judging.service import item_from_inputs
from app.judging.swap import orders_for
from app.judging.templates import reference_prompt
from app.scheduling.policy import Priority
from workers import outcome
from workers.context import WorkerContext
from workers.lease import LeaseKeeper
from workers.scheduler import RequestCancelled, SchedulerStopped

log = logging.getLogger(__name__)

JUDGE_KINDS = judging_kind.NAMES
# An item as a batch stored it: its row and its judge calls.
StoredItem = tuple[JudgmentItem, list[JudgeCall]]

# Results are committed (and progress announced) at least this often.
PROGRESS_ITEMS = 8
PROGRESS_SECONDS = 2.0
# How often the loop looks for cancels, lost leases and new jobs in the database; between those
# looks, a delivery waiting on the queue (one Redis round trip per WAKE_SECONDS) admits new jobs now.
CHECK_SECONDS = 0.5
WAKE_SECONDS = 0.05
# Queued jobs a worker looks at per tenant when admitting (oldest first).
ADMIT_PER_TENANT = 32


def job_priority(params: JudgingParams) -> Priority:
    """A job whose client waits for it (``?wait=``) is interactive; other judging is batch work."""
    return Priority.INTERACTIVE if params.priority == "interactive" else Priority.BATCH


def _described(job: Job, results: list[ItemResult]) -> str:
    """The ended job as the API shows it, with all its results (JSON)."""
    return jobs_service.job_out(job, results).model_dump_json()


@dataclass(eq=False)
class PendingItem:
    id: int
    index: int
    item: JudgeItem
    template: str
    generated: list[str]
    needs_reference: bool
    in_flight: bool = False

    def reference_due(self) -> bool:
        return self.needs_reference and len(self.generated) <= self.item.judged_turn


@dataclass
class ActiveJob:
    id: uuid.UUID
    attempts: int
    tenant: str
    options: JudgeOptions
    templates: dict[str, TemplateSpec]
    pending: list[PendingItem]
    done: int
    sampling: SamplingParams
    priority: Priority
    logprobs: bool
    failed: int = 0
    touched: bool = False
    # The verdict cache as the job may use it (None: it may not).
    cache: JobCache | None = None

    @classmethod
    def load(
        cls, ctx: WorkerContext, job_id: uuid.UUID, params: JudgingParams, attempts: int, tenant: str
    ) -> ActiveJob:
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
                    needs_reference=params.reference_auto and row.inputs.get("references") is None,
                )
                for row in rows
            ]
        return cls(
            id=job_id,
            attempts=attempts,
            tenant=tenant,
            options=params.options(),
            templates=dict(params.templates),
            pending=pending,
            done=done,
            failed=failed,
            sampling=params.sampling(),
            priority=job_priority(params),
            logprobs=params.verdict_mode == "logprobs",
            cache=JobCache.for_job(params, tenant, ctx.settings.verdict_cache_scope),
        )

    def calls_left(self) -> int:
        orders = len(orders_for(self.options.mode, self.options.swap, self.options.seed, 0))
        return len(self.pending) * orders * self.options.samples


@dataclass(eq=False)
class Flight:
    """One unit of an item in the scheduler: its judge calls, or the reference answer of one turn."""

    job: ActiveJob
    item: PendingItem
    futures: list[Future[Any]]
    calls: list[PlannedCall] = field(default_factory=list)
    reference: tuple[int, Conversation] | None = None  # (turn, prompt)
    judgment: PlannedJudgment | None = None  # the judge calls' item and template (for the verdict cache)


@dataclass(eq=False)
class Landed:
    """A flight whose requests are all back: an item's outcome, or a reference answer's output."""

    flight: Flight
    outcome: ItemOutcome | None = None
    reference: CallOutput | None = None
    # Served from the verdict cache; or the cache entries of what the engine returned.
    cached: bool = False
    fresh: list[cache_repo.CacheEntry] = field(default_factory=list)


class JudgeBatcher:
    def __init__(self, ctx: WorkerContext, lease: LeaseKeeper, model: str) -> None:
        self.ctx = ctx
        self.model = model
        self.lease = lease
        self.jobs: dict[uuid.UUID, ActiveJob] = {}
        self.flights: dict[Future[Any], Flight] = {}
        self.landed: list[Landed] = []
        self._first_landed = 0.0
        self.released: set[uuid.UUID] = set()
        self._seen_waiting = 0
        # Claimed jobs are held while fewer calls than this are left (interactive jobs and tenants with
        # nothing in hand always get in), so other workers of the model still get their share.
        self.hold_calls = 4 * ctx.settings.batch_size

    # -- membership ------------------------------------------------------------------------------

    def add(self, job_id: uuid.UUID, params: JudgingParams, attempts: int, tenant: str) -> None:
        self.lease.hold(job_id)
        self.jobs[job_id] = ActiveJob.load(self.ctx, job_id, params, attempts, tenant)

    def _calls_in_hand(self) -> int:
        return sum(job.calls_left() for job in self.jobs.values())

    def admit(self) -> None:
        """Claim queued judging jobs of this queue (a few per tenant, in arrival order) while there is
        room, and hand queued long jobs to the worker's orchestrators when they have room."""
        long_jobs = self.ctx.long_jobs
        wanted = JUDGE_KINDS + (kinds.long_kinds() if long_jobs is not None else ())
        with self.ctx.db.unit_of_work() as session:
            candidates = [
                (job.id, job.kind, job.params, job.tenant)
                for job in jobs_repo.queued_heads(session, self.ctx.queue_name, wanted, ADMIT_PER_TENANT)
            ]
        fused: list[tuple[uuid.UUID, int]] = []
        for job_id, kind, stored, tenant in candidates:
            if job_id in self.released:
                continue
            if kind not in JUDGE_KINDS:
                if long_jobs is not None and long_jobs.has_room():
                    started = long_jobs.claim_and_start(job_id)
                    if started is not None:
                        fused.append((job_id, started - 1))
                continue
            params = JudgingParams.model_validate(stored)
            in_hand = {job.tenant for job in self.jobs.values()}
            urgent = job_priority(params) == Priority.INTERACTIVE or tenant not in in_hand
            if not urgent and self._calls_in_hand() >= self.hold_calls:
                continue
            with self.ctx.db.unit_of_work() as session:
                claimed = lifecycle.claim(
                    session, self.ctx.queue, job_id, self.ctx.worker_id, self.ctx.settings.job_lease_seconds
                )
                attempts = claimed.attempts if claimed is not None else 0
            if claimed is not None:
                log.info("fused job %s into the running batch", job_id)
                self.add(job_id, params, attempts, tenant)
                fused.append((job_id, attempts - 1))  # (the delivery made before this claim)
        # Their own deliveries are moot now: off the queue with them.
        try:
            self.ctx.queue.withdraw(self.ctx.queue_name, fused)
        except Exception:
            log.warning("could not withdraw the deliveries of %d claimed job(s)", len(fused), exc_info=True)

    def _drop_interrupted(self) -> None:
        """End cancelled jobs (their requests leave the scheduler), forget jobs another worker took."""
        ids = list(self.jobs)
        with self.ctx.db.unit_of_work() as session:
            cancelled = jobs_repo.cancel_requested_among(session, ids)
            for job_id in cancelled:
                self.ctx.scheduler.cancel(job_id)
                outcome.end_in(self.ctx, session, job_id, "cancelled", None)
        for job_id in ids:
            if job_id in cancelled or self.lease.is_lost(job_id):
                if job_id not in cancelled:
                    log.warning("job %s: lease lost to another worker; dropping it", job_id)
                    self.ctx.scheduler.cancel(job_id)
                self._forget(job_id)

    def _forget(self, job_id: uuid.UUID) -> None:
        self.jobs.pop(job_id, None)
        self.lease.release(job_id)
        for future, flight in list(self.flights.items()):
            if flight.job.id == job_id:
                del self.flights[future]
        self.landed = [landed for landed in self.landed if landed.flight.job.id != job_id]

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        checked = 0.0
        while self.jobs or self._admitted_more():
            if self.ctx.shutdown.is_set():
                self.hand_back_all()
                return
            if time.monotonic() - checked >= CHECK_SECONDS or not self.flights:
                self._drop_interrupted()
                self.admit()
                checked = time.monotonic()
            elif self._deliveries_waiting():
                self.admit()
                self._seen_waiting = self.ctx.queue.waiting(self.ctx.queue_name)
            self._submit_due()
            if self.flights:
                # (A flight is back only when all its requests are: wait on those still out.)
                waiting = {f for f in self.flights if not f.done()}
                if waiting:
                    self.ctx.scheduler.wait(waiting, timeout=WAKE_SECONDS)
                self._collect({f for f in self.flights if f.done()})
            if self._commit_due():
                self._commit()

    def _deliveries_waiting(self) -> bool:
        """Whether deliveries arrived since the last admission (those it left, e.g. long jobs with no
        room, do not count again)."""
        try:
            waiting = self.ctx.queue.waiting(self.ctx.queue_name)
        except Exception:  # noqa: BLE001 - the database look at CHECK_SECONDS still admits them
            return False
        new, self._seen_waiting = waiting > self._seen_waiting, waiting
        return new

    def _admitted_more(self) -> bool:
        """With every held job done: whether queued jobs arrived meanwhile (the loop goes on)."""
        if self.ctx.shutdown.is_set():
            return False
        self.admit()
        return bool(self.jobs)

    def fail_all(self, error: str) -> None:
        """An unexpected failure: every held job is retried, or fails after its last attempt."""
        with self.ctx.db.unit_of_work() as session:
            for job in self.jobs.values():
                self.ctx.scheduler.cancel(job.id)
                outcome.retry_or_fail(self.ctx, session, job.id, job.attempts, error)
        for job_id in list(self.jobs):
            self._forget(job_id)

    def hand_back_all(self) -> None:
        """Graceful shutdown: results already back are kept, finished jobs end as usual; the others go
        back to the queue with their judged items kept, for the next worker to finish."""
        if self.landed:
            self._commit()
        with self.ctx.db.unit_of_work() as session:
            for job_id in self.jobs:
                self.ctx.scheduler.cancel(job_id)
                outcome.hand_back(self.ctx, session, job_id)
        log.info("shutting down: handed back %d job(s)", len(self.jobs))
        for job_id in list(self.jobs):
            self._forget(job_id)

    # -- sending requests ------------------------------------------------------------------------

    def _submit_due(self) -> None:
        """Every held item not in the scheduler yet goes there: its reference answer if one is due,
        else its judge calls, unless the verdict cache holds them all: then its outcome lands at once."""
        judging: list[tuple[ActiveJob, PendingItem, PlannedJudgment]] = []
        for job in list(self.jobs.values()):
            for p in job.pending:
                if p.in_flight:
                    continue
                p.in_flight = True
                if p.reference_due():
                    turn = len(p.generated)
                    prompt = reference_prompt(p.item, turn, p.generated[:turn])
                    greedy = SamplingParams(temperature=0.0, max_tokens=job.sampling.max_tokens)
                    self._fly(Flight(job, p, self._send(job, [prompt], greedy), reference=(turn, prompt)))
                else:
                    item = _with_references(p.item, p.generated) if p.needs_reference else p.item
                    spec = job.templates[p.template]
                    judging.append(
                        (job, p, PlannedJudgment(spec, item, plan_item(item, spec, job.options, p.index)))
                    )
        for (job, p, judgment), hit in zip(judging, self._cached(judging), strict=True):
            flight = Flight(job, p, [], calls=list(judgment.calls), judgment=judgment)
            if hit is not None:
                self._land_cached(flight, hit)
                continue
            labels = item_labels(PlannedItem(judgment.calls, job.options))[1] if job.logprobs else None
            flight.futures = self._send_calls(job, flight.calls, labels)
            self._fly(flight)

    def _fly(self, flight: Flight) -> None:
        for future in flight.futures:
            self.flights[future] = flight

    def _cached(
        self, judging: list[tuple[ActiveJob, PendingItem, PlannedJudgment]]
    ) -> list[ItemOutcome | None]:
        """Each item's outcome when the verdict cache holds every one of its calls, else None (one query
        per job whose policy reads the cache)."""
        found: dict[int, ItemOutcome | None] = {}
        by_job: dict[uuid.UUID, list[int]] = {}
        for i, (job, _, _) in enumerate(judging):
            if job.cache is not None and job.cache.reads:
                by_job.setdefault(job.id, []).append(i)
        if by_job:
            with self.ctx.db.unit_of_work() as session:
                for indices in by_job.values():
                    cache = judging[indices[0]][0].cache
                    assert cache is not None
                    outcomes = cache.lookup(session, [judging[i][2] for i in indices])
                    found.update(zip(indices, outcomes, strict=True))
        return [found.get(i) for i in range(len(judging))]

    def _land_cached(self, flight: Flight, result: ItemOutcome) -> None:
        if not self.landed:
            self._first_landed = time.monotonic()
        self.landed.append(Landed(flight, outcome=result, cached=True))

    def _send_calls(
        self, job: ActiveJob, calls: list[PlannedCall], labels: list[str] | None
    ) -> list[Future[Any]]:
        """The requests of an item's judge calls, one per call in ``calls``' order; each sample decodes
        with its own seed (:func:`sample_seed`), so its calls go as one submission."""
        futures: dict[int, Future[Any]] = {}
        for sample in sorted({c.sample for c in calls}):
            indices = [i for i, c in enumerate(calls) if c.sample == sample]
            sampling = job.sampling
            if sampling.seed is not None:
                sampling = dataclasses.replace(sampling, seed=sample_seed(sampling.seed, sample))
            sent = self._send(job, [calls[i].messages for i in indices], sampling, labels)
            futures.update(zip(indices, sent, strict=True))
        return [futures[i] for i in range(len(calls))]

    def _send(
        self,
        job: ActiveJob,
        prompts: list[Conversation],
        sampling: SamplingParams,
        labels: list[str] | None = None,
    ) -> list[Future[Any]]:
        """The job's requests to the scheduler: label scoring when ``labels`` are given, else generation."""
        who: dict[str, Any] = {"priority": job.priority, "tenant": job.tenant, "job_id": job.id}
        scheduler = self.ctx.scheduler
        if labels is not None:
            return list(scheduler.submit_scores(self.model, prompts, labels, **who))
        return list(scheduler.submit_generate(self.model, prompts, sampling, **who))

    # -- results ---------------------------------------------------------------------------------

    def _collect(self, done: set[Future[Any]]) -> None:
        """Flights whose every request is back become landed results; an engine failure that is not
        the call's own fault ends its job's attempt (after the results already back are stored)."""
        seen: set[int] = set()
        broken: dict[uuid.UUID, tuple[ActiveJob, str]] = {}
        for future in done:
            flight = self.flights.get(future)
            if flight is None or id(flight) in seen or not all(f.done() for f in flight.futures):
                continue
            seen.add(id(flight))
            for f in flight.futures:
                self.flights.pop(f, None)
            errors = [e for e in (f.exception() for f in flight.futures) if e is not None]
            if any(isinstance(e, (RequestCancelled, SchedulerStopped)) for e in errors):
                flight.item.in_flight = False  # cancelled or handed back: the loop's checks end the job
                continue
            unexpected = next((e for e in errors if not isinstance(e, EngineError)), None)
            if unexpected is not None:
                broken[flight.job.id] = (flight.job, f"{type(unexpected).__name__}: {unexpected}")
                continue
            self._land(flight, errors)
        if broken:
            if self.landed:
                self._commit()
            for job, error in broken.values():
                if job.id in self.jobs:
                    self._attempt_failed(job, error)

    def _land(self, flight: Flight, errors: list[BaseException]) -> None:
        if not self.landed:
            self._first_landed = time.monotonic()
        if errors:
            # This item cannot run (e.g. longer than the model's context): it fails alone.
            error = f"the judge call could not run: {errors[0]}"
            self.landed.append(Landed(flight, outcome=ItemOutcome(status="error", orders=(), error=error)))
            return
        outputs = [f.result() for f in flight.futures]
        if flight.reference is not None:
            gen = outputs[0]
            text = gen.text.strip()
            ref = CallOutput("reference", text, gen.tokens_in, gen.tokens_out, gen.latency_ms, gen.queue_ms)  # type: ignore[arg-type]
            self.landed.append(Landed(flight, reference=ref))
            return
        planned = PlannedItem(flight.calls, flight.job.options)
        result = (
            score_outcome(planned, outputs) if flight.job.logprobs else generation_outcome(planned, outputs)
        )
        cache, judgment = flight.job.cache, flight.judgment
        fresh = cache.entries(judgment, outputs) if cache is not None and judgment is not None else []
        self.landed.append(Landed(flight, outcome=result, fresh=fresh))

    def _attempt_failed(self, job: ActiveJob, error: str) -> None:
        """The engine failed on this job's call (not the call's own fault): the job is retried, or
        fails after its last attempt; other jobs go on."""
        log.warning("job %s: engine failure: %s", job.id, error)
        self.ctx.scheduler.cancel(job.id)
        with self.ctx.db.unit_of_work() as session:
            outcome.retry_or_fail(self.ctx, session, job.id, job.attempts, error)
        self._forget(job.id)
        # Not re-claimed by this loop: its next attempt is a new delivery.
        self.released.add(job.id)

    def _commit_due(self) -> bool:
        if not self.landed:
            return False
        if len(self.landed) >= PROGRESS_ITEMS or not self.flights:
            return True
        if time.monotonic() - self._first_landed >= PROGRESS_SECONDS:
            return True
        # A reference unblocks its item's judging; a job whose last item is back ends now.
        if any(entry.reference is not None for entry in self.landed):
            return True
        back = {id(entry.flight.item) for entry in self.landed}
        jobs = {entry.flight.job.id: entry.flight.job for entry in self.landed}
        return any(all(id(p) in back for p in job.pending) for job in jobs.values())

    def _commit(self) -> None:
        """Store the landed results and progress; end the jobs whose every item is judged."""
        landed, self.landed = self.landed, []
        judged: dict[uuid.UUID, list[StoredItem]] = {}
        stage = "judging"
        with self.ctx.db.unit_of_work() as session:
            rows = {
                row.id: row for row in judging_repo.items_by_id(session, [e.flight.item.id for e in landed])
            }
            for entry in landed:
                flight, p, job = entry.flight, entry.flight.item, entry.flight.job
                row = rows[p.id]
                if entry.reference is not None and flight.reference is not None:
                    turn, prompt = flight.reference
                    judging_repo.save_reference(session, row, turn, entry.reference, prompt_hash(prompt))
                    p.generated = p.generated[:turn] + [entry.reference.raw]
                    stage = "references"
                else:
                    assert entry.outcome is not None
                    hashes: dict[str, str] = {c.order: c.prompt_hash for c in flight.calls}
                    calls = judging_repo.save_outcome(session, row, entry.outcome, hashes, entry.cached)
                    judged.setdefault(job.id, []).append((row, calls))
                    job.pending.remove(p)
                    job.done += 1
                    job.failed += entry.outcome.status == "error"
                job.touched = True
            cache_repo.store(session, [e for entry in landed for e in entry.fresh])
            self._record_progress(session, stage)
            # A job ends in the transaction that records its last results: its waiting client hears
            # of it one commit sooner.
            finished = self._end_completed(session, judged)
        for entry in landed:
            entry.flight.item.in_flight = False
        for job_id in finished:
            self._forget(job_id)
        self._record_metrics([e for e in landed if e.outcome is not None])

    def _end_completed(self, session: Any, judged: dict[uuid.UUID, list[StoredItem]]) -> list[uuid.UUID]:
        """End, in the caller's transaction, the jobs whose every item is judged; the caller forgets them
        once it commits. ``judged`` holds the items the caller has just stored, by job: a job whose
        every item is there is announced with its results (its `?wait=` request then answers without
        reading them back)."""
        finished = [job for job in self.jobs.values() if not job.pending]
        for job in finished:
            stored = judged.get(job.id, [])
            describe = None
            if stored and len(stored) == job.done:
                results = sorted((item_result(row, calls) for row, calls in stored), key=lambda r: r.index)
                describe = functools.partial(_described, results=results)
            first_error = functools.partial(judging_repo.first_error, session, job.id)
            end = judging_end(job.done, job.failed, first_error)
            outcome.end_in(self.ctx, session, job.id, end.status, end.error, describe)
        return [job.id for job in finished]

    def _record_metrics(self, landed: list[Landed]) -> None:
        """Committed judgments, parse errors and item outcomes, per mode (for /metrics)."""
        by_mode: dict[str, list[ItemOutcome]] = {}
        for entry in landed:
            assert entry.outcome is not None
            by_mode.setdefault(entry.flight.job.options.mode, []).append(entry.outcome)
        for mode, outcomes in sorted(by_mode.items()):
            orders = [order for o in outcomes for order in o.orders]
            self.ctx.metrics.record_judgments(
                self.model,
                mode,
                judgments=len(orders),
                parse_errors=sum(order.error is not None for order in orders),
                items=Counter(o.status for o in outcomes),
            )

    def _record_progress(self, session: Any, stage: str) -> None:
        for job in self.jobs.values():
            if job.touched:
                lifecycle.record_progress(session, self.ctx.queue, job.id, job.done, stage, failed=job.failed)
                job.touched = False


def _with_references(item: JudgeItem, generated: list[str]) -> JudgeItem:
    return dataclasses.replace(item, references=tuple(generated))
