"""An MT-Bench run's items as FastChat judgment records for the leaderboard."""

from __future__ import annotations

from typing import Any

from app.dashboard.leaderboard import RunItem, baseline_of, run_judgments
from app.jobs.schemas import ItemResult, OrderResult
from app.mtbench.formats import ERROR_SCORE
from app.mtbench.tables import leaderboard


def pair(task: str, ab: str | None, ba: str | None, **item: Any) -> RunItem:
    orders = [
        OrderResult(order=o, raw=f"raw {o}", verdict=v, error=None if v else "no verdict")  # type: ignore[arg-type]
        for o, v in (("AB", ab), ("BA", ba))
    ]
    status = "ok" if ab and ba else "error"
    return RunItem(
        "judge-model", "pairwise", ItemResult(index=0, id=task, status=status, orders=orders, **item)
    )


def graded(task: str, score: float | None) -> RunItem:
    orders = [OrderResult(order="single", raw=f"Rating: [[{score}]]", score=score)]
    status = "ok" if score is not None else "error"
    return RunItem(
        "judge-model", "single", ItemResult(index=0, id=task, status=status, score=score, orders=orders)
    )


def test_pairs_map_orders_to_games_in_the_callers_labels() -> None:
    judged = run_judgments(
        [
            pair("81|alpha|base|1", "A", "A"),  # alpha wins both games
            pair("82|alpha|base|2", "A", "B"),  # the games disagree
            pair("q-text|beta|base|1", "tie", None),  # game 2 unparseable
        ]
    )
    first, second, third = judged.pairs
    assert (first.question_id, first.model_1, first.model_2, first.turn) == (81, "alpha", "base", 1)
    assert (first.g1_winner, first.g2_winner) == ("model_1", "model_1")
    assert (second.g1_winner, second.g2_winner, second.turn) == ("model_1", "model_2", 2)
    assert (third.question_id, third.g1_winner, third.g2_winner) == ("q-text", "tie", "error")
    assert first.g1_judgment == "raw AB" and first.g2_judgment == "raw BA"
    assert first.judge == ("judge-model", "pairwise")
    assert baseline_of(judged.pairs) == "base"
    rows = leaderboard(judged.pairs, baseline_of(judged.pairs))
    assert [(r.model, r.win, r.loss, r.tie) for r in rows if r.win is not None] == [("alpha", 1, 0, 1)]
    assert [r.model for r in rows] == ["alpha", "beta"]  # beta's only pair is an error: ranked last


def test_grades_errors_pending_foreign_and_repeated_tasks() -> None:
    pending = RunItem("m", "single", ItemResult(index=0, id="83|alpha|1", status="pending"))
    foreign = RunItem("m", "single", ItemResult(index=0, id="my own id", status="ok", score=3))
    no_id = RunItem("m", "single", ItemResult(index=0, status="ok", score=3))
    judged = run_judgments(
        [
            graded("81|alpha|1", 8),
            graded("81|alpha|1", 2),
            graded("82|alpha|1", None),
            pending,
            foreign,
            no_id,
        ]
    )
    assert [(j.question_id, j.model, j.score) for j in judged.single] == [
        (81, "alpha", 8),
        (82, "alpha", ERROR_SCORE),
    ]
    assert (judged.pending, judged.foreign) == (1, 2)
    assert judged.pairs == []


def test_a_pairwise_all_run_has_no_baseline() -> None:
    judged = run_judgments([pair("1|a|b|1", "A", "A"), pair("1|a|c|1", "A", "A"), pair("1|b|c|1", "A", "A")])
    assert baseline_of(judged.pairs) is None
