"""A judgment file's summary: FastChat's records as the judged items that ``app.summaries`` computes its
statistics from (bootstrap intervals, Bradley–Terry ratings, length-controlled win rates), so `judge
mtbench show --stats` reports what `judge jobs summary` reports for the same run. Pure.

Pairwise: game 1 is the order ``AB`` (``model_1`` shown first), game 2 ``BA``; the item's verdict is
the games' common winner, a tie when they differ (as FastChat's tables count it). Answer lengths, for
length control, come from the answers given (missing answers count as empty)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from app.jobs.schemas import ItemResult, OrderResult
from app.mtbench.formats import ERROR_SCORE, Judgment, ModelAnswer, PairJudgment, QuestionId, SingleJudgment
from app.mtbench.records import ITEM_ID_SEPARATOR
from app.summaries.observations import CATEGORY_KEY, JudgedItem, Observations, observations

Answers = Mapping[str, Mapping[QuestionId, ModelAnswer]]
Label = Literal["A", "B", "tie"]
_LABELS: dict[str, Label] = {"model_1": "A", "model_2": "B", "tie": "tie"}


def _id(question_id: QuestionId, models: Sequence[str], turn: int) -> str:
    return ITEM_ID_SEPARATOR.join([str(question_id), *models, str(turn)])


def _answer(answers: Answers, model: str, question_id: QuestionId, turn: int) -> str:
    answer = answers.get(model, {}).get(question_id)
    return answer.turns[turn - 1] if answer is not None and len(answer.turns) >= turn else ""


def _pair(index: int, j: PairJudgment) -> ItemResult:
    ab, ba = _LABELS.get(j.g1_winner), _LABELS.get(j.g2_winner)
    orders = [
        OrderResult(order="AB", raw=j.g1_judgment, verdict=ab, error=None if ab else "no verdict"),
        OrderResult(order="BA", raw=j.g2_judgment, verdict=ba, error=None if ba else "no verdict"),
    ]
    if ab is None or ba is None:
        return ItemResult(
            index=index,
            id=_id(j.question_id, (j.model_1, j.model_2), j.turn),
            status="error",
            error="a game has no verdict",
            orders=orders,
        )
    return ItemResult(
        index=index,
        id=_id(j.question_id, (j.model_1, j.model_2), j.turn),
        status="ok",
        verdict=ab if ab == ba else "tie",
        consistent=ab == ba,
        orders=orders,
    )


def _single(index: int, j: SingleJudgment) -> ItemResult:
    graded = j.score != ERROR_SCORE
    return ItemResult(
        index=index,
        id=_id(j.question_id, (j.model,), j.turn),
        status="ok" if graded else "error",
        score=j.score if graded else None,
        error=None if graded else "no grade",
        orders=[OrderResult(order="single", raw=j.judgment, score=j.score if graded else None)],
    )


def file_observations(
    judgments: Sequence[Judgment], categories: Mapping[QuestionId, str], answers: Answers
) -> Observations:
    """The observations of a judgment file's records (newest first, so a task judged again counts once,
    as its latest record); ``categories`` by question id (a score table per category), ``answers`` by
    model and question id (answer lengths)."""
    items = []
    for index, j in reversed(list(enumerate(judgments))):
        category = categories.get(j.question_id)
        metadata = {CATEGORY_KEY: category} if category is not None else {}
        if isinstance(j, PairJudgment):
            inputs = {
                "turn": 0,
                "answers_a": [_answer(answers, j.model_1, j.question_id, j.turn)],
                "answers_b": [_answer(answers, j.model_2, j.question_id, j.turn)],
            }
            items.append(JudgedItem(True, metadata, inputs, _pair(index, j)))
        else:
            items.append(JudgedItem(False, metadata, {"turn": 0}, _single(index, j)))
    return observations(items)
