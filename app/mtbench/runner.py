"""Running a plan: the missing judgments go to a submitter in batches (one template per batch), and each
finished judgment is appended to the FastChat output file at once, so an interrupted run resumes
where it stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.judging.domain import ItemOutcome, Mode, Scale, TemplateSpec, VerdictMode, VerdictParser
from app.mtbench.formats import (
    Judgment,
    JudgmentKind,
    JudgmentWriter,
    PairJudgment,
    SingleJudgment,
    read_judgments,
    repair_tail,
)
from app.mtbench.plan import Task
from app.mtbench.prompts import Templates
from app.mtbench.records import item_id, pair_judgment, single_judgment

DEFAULT_BATCH_ITEMS = 64


@dataclass(frozen=True)
class RunOptions:
    """How the judge is asked (the same for every batch of a run)."""

    judge_model: str
    run_name: str
    verdict_mode: VerdictMode = "generate"
    # FastChat's reading of the judge's text, so a run makes the judgments FastChat would make.
    parser: VerdictParser = "fastchat"
    cot: bool = False
    temperature: float = 0.0
    max_tokens: int | None = None
    seed: int = 0
    scale: Scale = field(default_factory=Scale)

    @property
    def tags(self) -> dict[str, str]:
        """What a job of this run is tagged with, so the service can group a run's jobs."""
        # The service caps metadata values at 512 characters.
        return {"mtbench_run": self.run_name[:512], "mtbench_judge": self.judge_model[:512]}


@dataclass(frozen=True)
class Batch:
    """Tasks judged with one template in one request (items carry :func:`item_id` ids)."""

    template: TemplateSpec
    tasks: tuple[Task, ...]

    @property
    def mode(self) -> Mode:
        return self.template.mode

    def ids(self) -> list[str]:
        return [item_id(task) for task in self.tasks]

    def tags(self, options: RunOptions) -> dict[str, str]:
        """The run's tags, and the batch's question category (summaries group scores by it)."""
        category = self.tasks[0].question.category if self.tasks else ""
        return {**options.tags, "category": category[:512]} if category else options.tags


class Submitter(Protocol):
    """Judges batches: in this process with a local engine, or on the service."""

    def judge(self, batches: Sequence[Batch], options: RunOptions) -> Iterator[tuple[Task, ItemOutcome]]:
        """Judge every task of ``batches``, yielding each task's outcome as soon as it is known (in any
        order). An outcome may be an item error (kept as an error judgment); a failure of the
        judging itself (the service down, a job failed) raises."""
        ...


def existing_judgments(path: Path, kind: JudgmentKind) -> list[Judgment]:
    """The judgments an earlier run wrote to ``path`` (none if it does not exist), after removing a
    last line that an interrupted write cut off."""
    if not path.exists():
        return []
    repair_tail(path)
    return read_judgments(path, kind)


def make_batches(tasks: Sequence[Task], templates: Templates, size: int = DEFAULT_BATCH_ITEMS) -> list[Batch]:
    """The tasks grouped by template and question category (plan order kept), in batches of at most
    ``size``: each job of a run on the service then holds one category, which it is tagged with."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    groups: dict[tuple[str, str], tuple[TemplateSpec, list[Task]]] = {}
    for task in tasks:
        spec = templates.spec(task.role)
        groups.setdefault((spec.name, task.question.category), (spec, []))[1].append(task)
    return [
        Batch(spec, tuple(group[start : start + size]))
        for spec, group in groups.values()
        for start in range(0, len(group), size)
    ]


def to_judgment(task: Task, outcome: ItemOutcome, templates: Templates, options: RunOptions) -> Judgment:
    """The FastChat record of a task's outcome."""
    spec = templates.spec(task.role)
    judge = (options.judge_model, templates.name(task.role))
    if task.role.mode == "single":
        return single_judgment(task, outcome, judge, spec, options.scale)
    return pair_judgment(task, outcome, judge, spec)


def check_template(spec: TemplateSpec, options: RunOptions) -> None:
    """Raise ``ValueError`` when ``spec`` cannot judge with ``options`` (the service's rules)."""
    if options.verdict_mode == "logprobs" and (spec.cot or not spec.response_prefix):
        raise ValueError(
            f"verdict mode 'logprobs' reads the verdict as the judge's first words after the template's "
            f"reply prefix, but template '{spec.name}' "
            + ("asks the judge to reason first" if spec.cot else "has no reply prefix")
            + "; use verdict mode 'generate'"
        )


@dataclass
class RunSummary:
    planned: int
    already_done: int
    written: int = 0
    errors: int = 0


def is_error(judgment: Judgment) -> bool:
    if isinstance(judgment, SingleJudgment):
        return judgment.score == -1
    assert isinstance(judgment, PairJudgment)
    return "error" in (judgment.g1_winner, judgment.g2_winner)


def run(
    planned: int,
    todo: Sequence[Task],
    templates: Templates,
    submitter: Submitter,
    writer: JudgmentWriter,
    options: RunOptions,
    batch_items: int = DEFAULT_BATCH_ITEMS,
    on_judgment: Callable[[Judgment, RunSummary], None] | None = None,
) -> RunSummary:
    """Judge the ``todo`` tasks (the missing ones of a ``planned``-task plan) and append each judgment
    to ``writer`` as it comes. Raises what the submitter raises; what was written stays written."""
    summary = RunSummary(planned=planned, already_done=planned - len(todo))
    if not todo:
        return summary
    batches = make_batches(todo, templates, batch_items)
    for batch in batches:
        check_template(batch.template, options)
    pending = {task.key for task in todo}
    for task, outcome in submitter.judge(batches, options):
        if task.key not in pending:
            continue  # judged twice (a reattached job overlapping a new one): the first one stands
        pending.discard(task.key)
        judgment = to_judgment(task, outcome, templates, options)
        writer.write(judgment)
        summary.written += 1
        summary.errors += is_error(judgment)
        if on_judgment is not None:
            on_judgment(judgment, summary)
    if pending:
        raise RuntimeError(f"the judge returned no outcome for {len(pending)} task(s)")
    return summary
