"""Which judgments a run needs, as FastChat's gen_judgment.py makes them, and which are still missing.

Every question is judged at each of its turns: turn 1 shows the first question and answer alone,
turn N (N > 1) the whole conversation up to turn N, as FastChat's multi-turn judges do for MT-Bench's
second turn. Questions in the categories FastChat grades against a reference (math, reasoning, coding)
carry their reference answers, one per turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from app.judging.domain import JudgeItem, Mode
from app.mtbench.formats import Judgment, ModelAnswer, PairJudgment, Question, QuestionId
from app.mtbench.prompts import Role

RunMode = Literal["single", "pairwise-baseline", "pairwise-all"]
RUN_MODES: tuple[RunMode, ...] = ("single", "pairwise-baseline", "pairwise-all")
NEED_REF_CATEGORIES = frozenset({"math", "reasoning", "coding"})
DEFAULT_BASELINE = "gpt-3.5-turbo"

# (question id, models in sorted order, turn): a pair judged as (a, b) or (b, a) is the same game.
JudgmentKey = tuple[QuestionId, tuple[str, ...], int]


class PlanError(ValueError):
    """The bench files cannot give the judgments asked for (a missing model, answer or reference)."""


@dataclass(frozen=True)
class Task:
    """One judgment to make: one model graded, or two compared, at one turn of one question."""

    question: Question
    turn: int  # 1-based
    models: tuple[str, ...]  # (model,) when grading, (model_1, model_2) when comparing
    answers: tuple[tuple[str, ...], ...]  # per model, its replies to every turn
    references: tuple[str, ...] | None = None  # one per turn, when the category needs them

    @property
    def key(self) -> JudgmentKey:
        return (self.question.question_id, tuple(sorted(self.models)), self.turn)

    @property
    def role(self) -> Role:
        mode: Mode = "single" if len(self.models) == 1 else "pairwise"
        return Role(mode, self.turn > 1, self.references is not None)

    def item(self) -> JudgeItem:
        """What the judge sees: the conversation up to this task's turn (turn 1 alone)."""
        n = self.turn
        return JudgeItem(
            turns=self.question.turns[:n],
            answers_a=self.answers[0][:n],
            answers_b=self.answers[1][:n] if len(self.answers) > 1 else None,
            references=self.references[:n] if self.references is not None else None,
            turn=n - 1,
        )


def judgment_key(judgment: Judgment) -> JudgmentKey:
    models = (judgment.model_1, judgment.model_2) if isinstance(judgment, PairJudgment) else (judgment.model,)
    return (judgment.question_id, tuple(sorted(models)), judgment.turn)


def references_for(
    questions: Sequence[Question], reference_answers: Mapping[QuestionId, ModelAnswer] | None
) -> dict[QuestionId, tuple[str, ...]]:
    """Reference answers of the questions that need them: the reference answer file's, else the
    question's own ``reference`` field. Raises :class:`PlanError` naming the questions left without."""
    refs: dict[QuestionId, tuple[str, ...]] = {}
    missing: list[str] = []
    for q in questions:
        if q.category not in NEED_REF_CATEGORIES:
            continue
        answer = reference_answers.get(q.question_id) if reference_answers is not None else None
        turns = answer.turns if answer is not None else q.reference
        if turns is None or len(turns) < len(q.turns):
            missing.append(str(q.question_id))
            continue
        refs[q.question_id] = tuple(turns[: len(q.turns)])
    if missing:
        raise PlanError(
            f"{len(missing)} {'/'.join(sorted(NEED_REF_CATEGORIES))} question(s) have no reference answer "
            f"for every turn (question ids {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}); "
            "give a reference answer file (reference_answer/<name>.jsonl) or a 'reference' in question.jsonl"
        )
    return refs


def _model_pairs(mode: RunMode, models: Sequence[str], baseline: str) -> list[tuple[str, ...]]:
    if mode == "single":
        return [(m,) for m in models]
    if mode == "pairwise-baseline":
        return [(m, baseline) for m in models if m != baseline]
    return [(models[i], models[j]) for i in range(len(models)) for j in range(i + 1, len(models))]


def plan(
    mode: RunMode,
    questions: Sequence[Question],
    answers: Mapping[str, Mapping[QuestionId, ModelAnswer]],
    references: Mapping[QuestionId, tuple[str, ...]],
    models: Sequence[str] | None = None,
    baseline: str = DEFAULT_BASELINE,
) -> list[Task]:
    """Every judgment of a run, question by question and turn by turn.

    ``models`` defaults to every model with an answer file (sorted); ``pairwise-baseline`` compares
    each with ``baseline`` (``model_2``), ``pairwise-all`` every pair once, in list order.
    ``references`` (from :func:`references_for`) must cover the questions that need them. Raises
    :class:`PlanError` for a missing model, answer or reference.
    """
    if mode not in RUN_MODES:
        raise PlanError(f"mode must be one of {', '.join(RUN_MODES)}, got {mode!r}")
    chosen = list(models) if models else sorted(answers)
    if len(set(chosen)) != len(chosen):
        raise PlanError("a model is listed twice")
    needed = [*chosen, baseline] if mode == "pairwise-baseline" and baseline not in chosen else chosen
    unknown = [m for m in needed if m not in answers]
    if unknown:
        raise PlanError(
            f"no answer file for model(s) {', '.join(unknown)} (have: {', '.join(sorted(answers)) or 'none'})"
        )
    pairs = _model_pairs(mode, chosen, baseline)
    if not pairs:
        what = "two models" if mode == "pairwise-all" else f"a model besides the baseline {baseline!r}"
        raise PlanError(f"mode {mode} needs {what}")
    _check_answers(questions, answers, needed)
    tasks: list[Task] = []
    for q in questions:
        refs = references.get(q.question_id) if q.category in NEED_REF_CATEGORIES else None
        if q.category in NEED_REF_CATEGORIES and refs is None:
            raise PlanError(f"question {q.question_id!r} ({q.category}) has no reference answer")
        for turn in range(1, len(q.turns) + 1):
            for pair in pairs:
                replies = tuple(answers[m][q.question_id].turns for m in pair)
                tasks.append(Task(q, turn, pair, replies, refs))
    return tasks


def _check_answers(
    questions: Sequence[Question],
    answers: Mapping[str, Mapping[QuestionId, ModelAnswer]],
    models: Iterable[str],
) -> None:
    problems: list[str] = []
    for m in models:
        for q in questions:
            answer = answers[m].get(q.question_id)
            if answer is None:
                problems.append(f"model {m} has no answer to question {q.question_id!r}")
            elif len(answer.turns) < len(q.turns):
                problems.append(
                    f"model {m} answered {len(answer.turns)} of the {len(q.turns)} turns of question "
                    f"{q.question_id!r}"
                )
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise PlanError("; ".join(problems[:5]) + more)


def missing(tasks: Sequence[Task], done: Iterable[Judgment]) -> list[Task]:
    """The tasks whose judgment is not in ``done`` (an earlier, interrupted run's output)."""
    have = {judgment_key(j) for j in done}
    return [t for t in tasks if t.key not in have]
