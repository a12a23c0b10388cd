"""Runs a judging job: optional reference generation, then batched judging, committing each batch
(results and progress together) so a retry resumes where the last attempt stopped."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from app.engine.base import SamplingParams
from app.jobs import repository as jobs_repo
from app.judging import repository as judging_repo
from app.judging.domain import CallOutput, JudgeItem, JudgeOptions, Scale, TemplateSpec
from app.judging.planning import plan_item, prompt_hash
from app.judging.service import item_from_inputs
from app.judging.swap import aggregate
from app.judging.templates import reference_prompt
from workers.context import WorkerContext
from workers.lease import LeaseKeeper

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobInterrupted(Exception):
    """The job was cancelled or taken over by another worker; stop without writing more."""

    def __init__(self, status: str | None) -> None:
        super().__init__(status or "lease lost")
        self.status = status


@dataclass
class PendingItem:
    id: int
    index: int
    item: JudgeItem
    template: str
    generated: list[str]
    needs_reference: bool


def chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _options(params: dict[str, Any]) -> JudgeOptions:
    scale = params.get("scale") or {}
    return JudgeOptions(
        mode=params["mode"],
        swap=params["swap"],
        cot=params["cot"],
        scale=Scale(min=scale.get("min", 1), max=scale.get("max", 10)),
        seed=int(params["seed"]),
    )


class JudgeJobRunner:
    def __init__(
        self, ctx: WorkerContext, job_id: uuid.UUID, params: dict[str, Any], lease: LeaseKeeper
    ) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.params = params
        self.lease = lease
        self.options = _options(params)
        self.templates = {name: TemplateSpec(**spec) for name, spec in params["templates"].items()}
        self.sampling = SamplingParams(
            temperature=float(params["temperature"]),
            max_tokens=int(params["max_tokens"]),
            seed=params["seed"],
        )
        self.batch_size = ctx.settings.batch_size

    def _checkpoint(self) -> None:
        """Between batches: stop if the job was cancelled or our lease was lost."""
        if self.lease.lost.is_set():
            raise JobInterrupted(None)
        with self.ctx.db.unit_of_work() as session:
            if jobs_repo.is_cancel_requested(session, self.job_id):
                raise JobInterrupted("cancelled")

    def _load(self) -> list[PendingItem]:
        with self.ctx.db.unit_of_work() as session:
            rows = judging_repo.pending_items(session, self.job_id)
            return [
                PendingItem(
                    id=row.id,
                    index=row.index,
                    item=item_from_inputs(row.inputs),
                    template=row.inputs["template"],
                    generated=list(row.generated_references or []),
                    needs_reference=bool(self.params.get("reference_auto"))
                    and row.inputs.get("references") is None,
                )
                for row in rows
            ]

    def run(self) -> None:
        pending = self._load()
        self._generate_references([p for p in pending if p.needs_reference])
        self._judge(pending)

    def _generate_references(self, pending: list[PendingItem]) -> None:
        """The judge writes its own answers, turn by turn (each turn sees the earlier reference answers)."""
        if not pending:
            return
        last_turn = max(p.item.judged_turn for p in pending)
        sampling = dataclasses.replace(self.sampling, temperature=0.0)
        for turn in range(last_turn + 1):
            todo = [p for p in pending if p.item.judged_turn >= turn and len(p.generated) <= turn]
            for batch in chunks(todo, self.batch_size):
                self._checkpoint()
                prompts = [reference_prompt(p.item, turn, p.generated[:turn]) for p in batch]
                outputs = self.ctx.engine.generate(prompts, sampling)
                with self.ctx.db.unit_of_work() as session:
                    rows = {row.id: row for row in judging_repo.items_by_id(session, [p.id for p in batch])}
                    for p, prompt, gen in zip(batch, prompts, outputs, strict=True):
                        text = gen.text.strip()
                        judging_repo.save_reference(
                            session,
                            rows[p.id],
                            turn,
                            CallOutput("reference", text, gen.tokens_in, gen.tokens_out, gen.latency_ms),  # type: ignore[arg-type]
                            prompt_hash(prompt),
                        )
                        p.generated = p.generated[:turn] + [text]
                    jobs_repo.set_progress(session, self.job_id, self._done(session), "references")

    def _done(self, session: Any) -> int:
        return judging_repo.count_done(session, self.job_id)

    def _judge(self, pending: list[PendingItem]) -> None:
        for batch in chunks(pending, self.batch_size):
            self._checkpoint()
            planned = []
            for p in batch:
                item = p.item
                if p.needs_reference:
                    item = dataclasses.replace(item, references=tuple(p.generated))
                planned.append(plan_item(item, self.templates[p.template], self.options, p.index))
            flat = [call for calls in planned for call in calls]
            outputs = iter(self.ctx.engine.generate([c.messages for c in flat], self.sampling))
            with self.ctx.db.unit_of_work() as session:
                rows = {row.id: row for row in judging_repo.items_by_id(session, [p.id for p in batch])}
                for p, calls in zip(batch, planned, strict=True):
                    results = []
                    for call in calls:
                        gen = next(outputs)
                        results.append(
                            CallOutput(
                                call.order,
                                call.response_prefix + gen.text,
                                gen.tokens_in,
                                gen.tokens_out,
                                gen.latency_ms,
                            )
                        )
                    outcome = aggregate(self.options.mode, self.options.swap, results, self.options.scale)
                    judging_repo.save_outcome(
                        session, rows[p.id], outcome, {c.order: c.prompt_hash for c in calls}
                    )
                session.flush()
                jobs_repo.set_progress(session, self.job_id, self._done(session), "judging")
