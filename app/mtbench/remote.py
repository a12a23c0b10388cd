"""Judging on the service through ``judge_client``: one job per batch, results taken as the items finish.

Every job submitted is noted in a job ledger next to the output file (one JSON line: job id and the
item ids it judges). A run that was interrupted reattaches to its jobs that are still queued, running
or finished, so their work is used rather than done again; failed or cancelled ones are resubmitted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.judging.domain import ItemOutcome, OrderOutcome, TemplateSpec
from app.mtbench.formats import repair_tail
from app.mtbench.plan import Task
from app.mtbench.records import item_id
from app.mtbench.runner import Batch, RunOptions
from judge_client import BatchOptions, Job, Judge, NotFound, PairwiseItem, SingleItem
from judge_client import ItemResult as ClientItemResult

LEDGER_SUFFIX = ".jobs.jsonl"
_TEMPLATE_FIELDS = ("mode", "multi_turn", "reference", "cot", "system", "user", "response_prefix")


class ServiceRunError(RuntimeError):
    """The service could not judge some of the run (a job failed or was cancelled)."""


def ledger_path(output: Path) -> Path:
    """Where the jobs of the run writing ``output`` are noted: ``<output without .jsonl>.jobs.jsonl``."""
    return output.with_name(output.name.removesuffix(".jsonl") + LEDGER_SUFFIX)


def to_item(task: Task) -> PairwiseItem | SingleItem:
    """The API item of a task: turn 1 as a single-turn item, later turns as the conversation so far."""
    item = task.item()
    common: dict[str, Any] = {"id": item_id(task)}
    if len(item.turns) == 1:
        common.update(question=item.turns[0], reference=item.references[0] if item.references else None)
        if item.answers_b is None:
            return SingleItem(answer=item.answers_a[0], **common)
        return PairwiseItem(answer_a=item.answers_a[0], answer_b=item.answers_b[0], **common)
    common.update(
        turns=list(item.turns),
        references=list(item.references) if item.references is not None else None,
        turn=task.turn,
    )
    if item.answers_b is None:
        return SingleItem(answers=list(item.answers_a), **common)
    return PairwiseItem(answers_a=list(item.answers_a), answers_b=list(item.answers_b), **common)


def to_outcome(result: ClientItemResult) -> ItemOutcome:
    """A finished item's result as the judging core's outcome."""
    orders = tuple(
        OrderOutcome(
            order=o.order,
            raw=o.raw,
            verdict=o.verdict,
            score=o.score,
            error=o.error,
            tokens_in=o.tokens_in,
            tokens_out=o.tokens_out,
            latency_ms=o.latency_ms,
            queue_ms=o.queue_ms,
            probs=o.probabilities,
        )
        for o in result.orders
    )
    return ItemOutcome(
        status="ok" if result.status == "ok" else "error",
        orders=orders,
        verdict=result.verdict,
        score=result.score,
        consistent=result.consistent,
        error=result.error,
        probs=result.probabilities,
        expected_score=result.expected_score,
    )


def ensure_templates(url: str, key: str | None, specs: Sequence[TemplateSpec]) -> dict[str, str]:
    """Make the service know ``specs`` (templates are per tenant): reuse a registered version with the
    same text, else register a new version. Returns each template's reference, ``name@version``."""
    if not specs:
        return {}
    refs: dict[str, str] = {}
    with Judge(url, key) as client:
        listed = [t for t in client.templates() if not t.builtin]
        for spec in specs:
            wanted = {f: getattr(spec, f) for f in _TEMPLATE_FIELDS}
            same = [
                t
                for t in listed
                if t.name == spec.name and all(getattr(t, f) == v for f, v in wanted.items())
            ]
            if same:
                refs[spec.name] = max(same, key=lambda t: t.version).ref
                continue
            created = client.create_template(spec.name, description=spec.description, **wanted)
            refs[spec.name] = created.ref
    return refs


@dataclass
class _OpenJob:
    id: str
    ids: list[str]
    fetched_done: int = 0  # the job's progress when its results were last read


class ServiceSubmitter:
    """Judges batches as jobs of the judge service (see the module docstring for reattachment)."""

    def __init__(
        self,
        client: Judge,
        ledger: Path,
        template_refs: Mapping[str, str] | None = None,
        poll_seconds: float = 2.0,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.template_refs = dict(template_refs or {})
        self.poll_seconds = poll_seconds

    def judge(self, batches: Sequence[Batch], options: RunOptions) -> Iterator[tuple[Task, ItemOutcome]]:
        wanted = {item_id(task): task for batch in batches for task in batch.tasks}
        jobs, covered = self._reattach(wanted)
        for batch in batches:
            tasks = [task for task in batch.tasks if item_id(task) not in covered]
            if tasks:
                jobs.append(self._submit(batch, tasks, options))
        yield from self._collect(jobs, wanted)

    def _reattach(self, wanted: Mapping[str, Task]) -> tuple[list[_OpenJob], set[str]]:
        jobs: list[_OpenJob] = []
        covered: set[str] = set()
        for entry in read_ledger(self.ledger):
            ids = entry["ids"]
            if not (set(ids) & (wanted.keys() - covered)):
                continue
            try:
                job = self.client.job(entry["job_id"])
            except NotFound:
                continue
            if job.status == "cancelled" or (job.status == "failed" and not _items_failed(job)):
                continue
            jobs.append(_OpenJob(job.id, ids))
            covered.update(ids)
        return jobs, covered

    def _submit(self, batch: Batch, tasks: list[Task], options: RunOptions) -> _OpenJob:
        spec = batch.template
        opts: BatchOptions = {
            "model": options.judge_model,
            "template": self.template_refs.get(spec.name, spec.name),
            "cot": spec.cot,
            "temperature": options.temperature,
            "seed": options.seed,
            "verdict_mode": options.verdict_mode,
            "parser": options.parser,
        }
        if options.max_tokens is not None:
            opts["max_tokens"] = options.max_tokens
        if batch.mode == "pairwise":
            opts["swap"] = "conservative"  # FastChat judges both orders (game 1 and game 2)
        else:
            opts["scale"] = (options.scale.min, options.scale.max)
        # The run's tag groups its jobs on the service (the dashboard's leaderboard and summaries read it).
        opts["metadata"] = batch.tags(options)
        job = self.client.submit_batch([to_item(task) for task in tasks], batch.mode, **opts)
        ids = [item_id(task) for task in tasks]
        append_ledger(self.ledger, job.id, ids)
        return _OpenJob(job.id, ids)

    def _collect(
        self, jobs: list[_OpenJob], wanted: Mapping[str, Task]
    ) -> Iterator[tuple[Task, ItemOutcome]]:
        seen: set[str] = set()
        failures: list[str] = []
        open_jobs = list(jobs)
        while open_jobs:
            for job_ref in list(open_jobs):
                job = self.client.job(job_ref.id)
                if job.progress.done > job_ref.fetched_done or job.ended:
                    job_ref.fetched_done = job.progress.done
                    for result in self.client.results(job.id):
                        if result.status == "pending" or result.index >= len(job_ref.ids):
                            continue
                        rid = job_ref.ids[result.index]
                        if rid in seen or rid not in wanted:
                            continue
                        seen.add(rid)
                        yield wanted[rid], to_outcome(result)
                if job.ended:
                    open_jobs.remove(job_ref)
                    if job.status != "succeeded" and not _items_failed(job):
                        failures.append(f"job {job.id} {job.status}: {job.error or 'no reason given'}")
            if open_jobs:
                time.sleep(self.poll_seconds)
        if failures:
            raise ServiceRunError(
                "; ".join(failures) + " — the judgments done are written; run again to retry the rest"
            )


def _items_failed(job: Job) -> bool:
    """Whether the job failed only because every one of its items did: those are judgments in error
    (FastChat's `error` winner, score -1), written like any other, not work left to retry."""
    total = job.progress.total
    return job.status == "failed" and total > 0 and job.progress.done == job.progress.failed == total


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The jobs noted in a ledger (a cut-off last line, from an interrupted write, is skipped)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("job_id"), str)
            and isinstance(entry.get("ids"), list)
        ):
            entries.append(entry)
    return entries


def append_ledger(path: Path, job_id: str, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"job_id": job_id, "ids": ids, "tstamp": time.time()}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
