"""The service's judging results in FastChat's conventions, and the ids that tag judging items.

Pairwise: game 1 (``g1``) is the order that shows ``model_1`` as assistant A (the service's ``AB``),
game 2 the swapped one (``BA``); each game's winner is ``model_1``, ``model_2``, ``tie`` or ``error``.
Single: the grade, or -1 when the judge gave none.
"""

from __future__ import annotations

import time
from typing import Protocol

from app.engine.base import Conversation
from app.judging.domain import ItemOutcome, Order, OrderOutcome, Scale, TemplateSpec
from app.judging.templates import render
from app.mtbench.formats import ERROR_SCORE, Judgment, PairJudgment, QuestionId, SingleJudgment, Winner
from app.mtbench.plan import Task

ITEM_ID_SEPARATOR = "|"
_WINNERS: dict[str, Winner] = {"A": "model_1", "B": "model_2", "tie": "tie"}


def item_id(task: Task) -> str:
    """The id a task's judging item carries: ``<question_id>|<model_1>[|<model_2>]|<turn>``."""
    return ITEM_ID_SEPARATOR.join([str(task.question.question_id), *task.models, str(task.turn)])


def parse_item_id(text: str) -> tuple[str, tuple[str, ...], int]:
    """(question id as text, models, turn) from :func:`item_id`. Raises ``ValueError`` otherwise."""
    parts = text.split(ITEM_ID_SEPARATOR)
    if len(parts) not in (3, 4) or not parts[-1].isdigit():
        raise ValueError(f"not an MT-Bench item id: {text!r}")
    return parts[0], tuple(parts[1:-1]), int(parts[-1])


def user_prompt(spec: TemplateSpec, task: Task, order: Order, scale: Scale) -> str:
    """The user message the judge saw for a task in one order (the service renders the same)."""
    messages: Conversation = render(spec, task.item(), order, scale)
    return next(m["content"] for m in messages if m["role"] == "user")


def _order(outcome: ItemOutcome, order: Order) -> OrderOutcome | None:
    return next((o for o in outcome.orders if o.order == order), None)


class Verdicted(Protocol):
    """One judged order: the service's ``OrderOutcome``, or an API result's order."""

    @property
    def verdict(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...


def game_winner(order: Verdicted | None) -> Winner:
    """A game's winner; ``order.verdict`` is in the caller's labels (A is always ``model_1``)."""
    if order is None or order.error is not None or order.verdict is None:
        return "error"
    return _WINNERS[order.verdict]


def _pair(
    question_id: QuestionId,
    models: tuple[str, ...],
    turn: int,
    outcome: ItemOutcome,
    judge: tuple[str, str],
    prompts: tuple[str, str],
    tstamp: float | None,
) -> PairJudgment:
    g1, g2 = _order(outcome, "AB"), _order(outcome, "BA")
    fallback = outcome.error or "no judge output"
    return PairJudgment(
        question_id=question_id,
        model_1=models[0],
        model_2=models[1],
        g1_winner=game_winner(g1),
        g2_winner=game_winner(g2),
        judge=judge,
        g1_user_prompt=prompts[0],
        g1_judgment=g1.raw if g1 is not None else fallback,
        g2_user_prompt=prompts[1],
        g2_judgment=g2.raw if g2 is not None else fallback,
        turn=turn,
        tstamp=time.time() if tstamp is None else tstamp,
    )


def _single(
    question_id: QuestionId,
    model: str,
    turn: int,
    outcome: ItemOutcome,
    judge: tuple[str, str],
    prompt: str,
    tstamp: float | None,
) -> SingleJudgment:
    graded = _order(outcome, "single")
    score = outcome.score if outcome.status == "ok" else None
    return SingleJudgment(
        question_id=question_id,
        model=model,
        judge=judge,
        user_prompt=prompt,
        judgment=graded.raw if graded is not None else (outcome.error or "no judge output"),
        score=score if score is not None else ERROR_SCORE,
        turn=turn,
        tstamp=time.time() if tstamp is None else tstamp,
    )


def pair_judgment(
    task: Task, outcome: ItemOutcome, judge: tuple[str, str], spec: TemplateSpec, tstamp: float | None = None
) -> PairJudgment:
    """The ``_pair.jsonl`` record of a pairwise task (its prompts rendered with ``spec``)."""
    scale = Scale()
    prompts = (user_prompt(spec, task, "AB", scale), user_prompt(spec, task, "BA", scale))
    return _pair(task.question.question_id, task.models, task.turn, outcome, judge, prompts, tstamp)


def single_judgment(
    task: Task,
    outcome: ItemOutcome,
    judge: tuple[str, str],
    spec: TemplateSpec,
    scale: Scale,
    tstamp: float | None = None,
) -> SingleJudgment:
    """The ``_single.jsonl`` record of a grading task (its prompt rendered with ``spec``)."""
    prompt = user_prompt(spec, task, "single", scale)
    return _single(task.question.question_id, task.models[0], task.turn, outcome, judge, prompt, tstamp)


def judgment_from_item(
    text_id: str, outcome: ItemOutcome, judge: tuple[str, str] = ("", ""), tstamp: float = 0.0
) -> Judgment:
    """The judgment record of a service item that a run tagged with :func:`item_id`, from its stored
    result (prompts left empty): what a leaderboard of the service's results needs. Raises
    ``ValueError`` for another id."""
    qid_text, models, turn = parse_item_id(text_id)
    qid: QuestionId = int(qid_text) if qid_text.isdigit() else qid_text
    if len(models) == 2:
        return _pair(qid, models, turn, outcome, judge, ("", ""), tstamp)
    return _single(qid, models[0], turn, outcome, judge, "", tstamp)
