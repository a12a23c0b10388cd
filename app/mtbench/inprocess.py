"""Judging in this process with a local engine (no database, no queue): the service's judging core
(templates, swap, verdict parsing or label probabilities) driven batch by batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from app.engine.base import Engine, SamplingParams
from app.judging.domain import ItemOutcome, JudgeOptions, PlannedCall, TemplateSpec
from app.judging.execution import MARKER_CLOSE, PlannedItem, generate_outcomes, score_outcomes
from app.judging.planning import plan_item
from app.judging.service import DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS_COT
from app.mtbench.plan import Task
from app.mtbench.runner import Batch, RunOptions


@dataclass(frozen=True)
class _Unit:
    task: Task
    calls: list[PlannedCall]


class InProcessSubmitter:
    """Judges batches with ``engine``, ``batch_size`` judge calls per engine batch (both orders of a
    pair always in the same engine batch, as the workers do)."""

    def __init__(self, engine: Engine, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.engine = engine
        self.batch_size = batch_size

    def judge(self, batches: Sequence[Batch], options: RunOptions) -> Iterator[tuple[Task, ItemOutcome]]:
        for batch in batches:
            judge_options = JudgeOptions(
                mode=batch.mode,
                swap="conservative" if batch.mode == "pairwise" else "none",
                cot=options.cot,
                scale=options.scale,
                seed=options.seed,
                verdict_mode=options.verdict_mode,
                parser=options.parser,
            )
            units = [
                _Unit(task, plan_item(task.item(), batch.template, judge_options, index))
                for index, task in enumerate(batch.tasks)
            ]
            for chunk in self._chunks(units):
                if options.verdict_mode == "logprobs":
                    outcomes = self._score(chunk, judge_options)
                else:
                    outcomes = self._generate(chunk, judge_options, options, batch.template)
                yield from zip((unit.task for unit in chunk), outcomes, strict=True)

    def _chunks(self, units: list[_Unit]) -> Iterator[list[_Unit]]:
        chunk: list[_Unit] = []
        calls = 0
        for unit in units:
            if chunk and calls + len(unit.calls) > self.batch_size:
                yield chunk
                chunk, calls = [], 0
            chunk.append(unit)
            calls += len(unit.calls)
        if chunk:
            yield chunk

    def _generate(
        self, units: list[_Unit], judge: JudgeOptions, options: RunOptions, template: TemplateSpec
    ) -> list[ItemOutcome]:
        # The service's defaults: a short reply, or a long one when the judge reasons first.
        default_tokens = DEFAULT_MAX_TOKENS_COT if template.cot else DEFAULT_MAX_TOKENS
        sampling = SamplingParams(
            temperature=options.temperature,
            max_tokens=options.max_tokens or default_tokens,
            seed=options.seed,
            # A reply opened with the verdict marker is complete at its closing brackets.
            stop=(MARKER_CLOSE,) if template.response_prefix else (),
        )
        return generate_outcomes(self.engine, [PlannedItem(u.calls, judge) for u in units], sampling)

    def _score(self, units: list[_Unit], judge: JudgeOptions) -> list[ItemOutcome]:
        return score_outcomes(self.engine, [PlannedItem(u.calls, judge) for u in units])
