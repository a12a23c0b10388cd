"""An MT-Bench run's judging results as FastChat judgment records, for the leaderboard of
``app.mtbench.tables``. Pure.

The run's items carry ids ``<question_id>|<model_1>[|<model_2>]|<turn>``; game 1 of a pair is the
order that shows ``model_1`` first (``AB``), game 2 the swapped one (``BA``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from app.jobs.schemas import ItemResult, OrderResult
from app.mtbench.formats import ERROR_SCORE, PairJudgment, QuestionId, SingleJudgment
from app.mtbench.records import game_winner, parse_item_id
from app.stats.records import baseline_of as baseline_among


@dataclass(frozen=True)
class RunItem:
    """One judging item of the run, with the judge that judged it."""

    judge_model: str
    template: str
    result: ItemResult


@dataclass
class RunJudgments:
    single: list[SingleJudgment] = field(default_factory=list)
    pairs: list[PairJudgment] = field(default_factory=list)
    pending: int = 0  # items not judged yet
    foreign: int = 0  # items whose id is not an MT-Bench task id


def _question_id(text: str) -> QuestionId:
    return int(text) if text.isdigit() else text


def _order(result: ItemResult, name: str) -> OrderResult | None:
    return next((o for o in result.orders if o.order == name), None)


def run_judgments(items: Iterable[RunItem]) -> RunJudgments:
    """FastChat records of the judged items; a task judged more than once (a resumed run) counts once,
    from the first item given (pass the newest first)."""
    out = RunJudgments()
    seen: set[str] = set()
    for item in items:
        result = item.result
        task_id = result.id or ""
        try:
            question, models, turn = parse_item_id(task_id)
        except ValueError:
            out.foreign += 1
            continue
        if result.status == "pending":
            out.pending += 1
            continue
        if task_id in seen:
            continue
        seen.add(task_id)
        judge = (item.judge_model, item.template)
        if len(models) == 1:
            graded = _order(result, "single")
            score = result.score if result.status == "ok" and result.score is not None else ERROR_SCORE
            out.single.append(
                SingleJudgment(
                    question_id=_question_id(question),
                    model=models[0],
                    judge=judge,
                    user_prompt="",
                    judgment=graded.raw if graded is not None else (result.error or ""),
                    score=score,
                    turn=turn,
                    tstamp=0.0,
                )
            )
            continue
        g1, g2 = _order(result, "AB"), _order(result, "BA")
        out.pairs.append(
            PairJudgment(
                question_id=_question_id(question),
                model_1=models[0],
                model_2=models[1],
                g1_winner=game_winner(g1),
                g2_winner=game_winner(g2),
                judge=judge,
                g1_user_prompt="",
                g1_judgment=g1.raw if g1 is not None else "",
                g2_user_prompt="",
                g2_judgment=g2.raw if g2 is not None else "",
                turn=turn,
                tstamp=0.0,
            )
        )
    return out


def baseline_of(pairs: Iterable[PairJudgment]) -> str | None:
    """The baseline of a pairwise-baseline run: the one ``model_2`` of every pair, never a ``model_1``
    (None for a pairwise-all run)."""
    return baseline_among((p.model_1, p.model_2) for p in pairs)
