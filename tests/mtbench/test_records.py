"""Service outcomes in FastChat's conventions: game winners, -1 for an error, item ids."""

from __future__ import annotations

import pytest

from app.judging.domain import ItemOutcome, OrderOutcome, Scale
from app.mtbench import prompts
from app.mtbench.formats import PairJudgment, Question, SingleJudgment
from app.mtbench.plan import Task
from app.mtbench.records import item_id, judgment_from_item, pair_judgment, parse_item_id, single_judgment

Q = Question(81, "writing", ("Say hi.", "Say bye."))
PAIR = Task(Q, 2, ("m1", "m2"), (("hi 1", "bye 1"), ("hi 2", "bye 2")))
SINGLE = Task(Q, 1, ("m1",), (("hi 1", "bye 1"),))
JUDGE = ("smol", "pairwise-multi")


def test_game_winners_are_named_by_model() -> None:
    spec = prompts.builtin().spec(PAIR.role)
    # Verdicts are in the caller's labels: "A" is model_1 in both orders.
    outcome = ItemOutcome(
        "ok",
        (
            OrderOutcome("AB", "Verdict: [[A]]", verdict="A"),
            OrderOutcome("BA", "Verdict: [[A]]", verdict="B"),
        ),
        verdict="tie",
        consistent=False,
    )
    j = pair_judgment(PAIR, outcome, JUDGE, spec, tstamp=5.0)
    assert (j.g1_winner, j.g2_winner) == ("model_1", "model_2")
    assert (j.g1_judgment, j.g2_judgment, j.turn, j.judge) == ("Verdict: [[A]]", "Verdict: [[A]]", 2, JUDGE)
    # Game 1 shows model_1 as assistant A, game 2 shows model_2 as A.
    assert j.g1_user_prompt.index("hi 1") < j.g1_user_prompt.index("hi 2")
    assert j.g2_user_prompt.index("hi 2") < j.g2_user_prompt.index("hi 1")
    tie = ItemOutcome(
        "ok", (OrderOutcome("AB", "[[C]]", verdict="tie"), OrderOutcome("BA", "[[C]]", verdict="tie"))
    )
    assert pair_judgment(PAIR, tie, JUDGE, spec).g1_winner == "tie"


def test_errors_keep_the_raw_text() -> None:
    spec = prompts.builtin().spec(PAIR.role)
    outcome = ItemOutcome(
        "error",
        (
            OrderOutcome("AB", "Verdict: [[A]]", verdict="A"),
            OrderOutcome("BA", "no idea", error="no verdict"),
        ),
        error="order BA: no verdict",
    )
    j = pair_judgment(PAIR, outcome, JUDGE, spec)
    assert (j.g1_winner, j.g2_winner, j.g2_judgment) == ("model_1", "error", "no idea")
    nothing = pair_judgment(PAIR, ItemOutcome("error", (), error="engine down"), JUDGE, spec)
    assert (nothing.g1_winner, nothing.g2_winner, nothing.g1_judgment) == ("error", "error", "engine down")

    single_spec = prompts.builtin().spec(SINGLE.role)
    bad = ItemOutcome(
        "error", (OrderOutcome("single", "Rating: [[11]]", error="score 11 is outside"),), error="x"
    )
    graded = single_judgment(SINGLE, bad, ("smol", "single"), single_spec, Scale())
    assert (graded.score, graded.judgment, graded.turn) == (-1, "Rating: [[11]]", 1)
    good = ItemOutcome("ok", (OrderOutcome("single", "Rating: [[6]]", score=6),), score=6)
    assert single_judgment(SINGLE, good, ("smol", "single"), single_spec, Scale()).score == 6


def test_item_ids_round_trip() -> None:
    assert item_id(PAIR) == "81|m1|m2|2"
    assert parse_item_id(item_id(PAIR)) == ("81", ("m1", "m2"), 2)
    assert parse_item_id(item_id(SINGLE)) == ("81", ("m1",), 1)


def test_records_from_stored_results() -> None:
    outcome = ItemOutcome(
        "ok",
        (OrderOutcome("AB", "[[B]]", verdict="B"), OrderOutcome("BA", "[[A]]", verdict="B")),
        verdict="B",
    )
    pair = judgment_from_item("81|m1|m2|2", outcome, JUDGE)
    assert isinstance(pair, PairJudgment)
    assert (pair.question_id, pair.model_1, pair.model_2, pair.turn) == (81, "m1", "m2", 2)
    assert (pair.g1_winner, pair.g2_winner, pair.g2_judgment) == ("model_2", "model_2", "[[A]]")
    graded = judgment_from_item(
        "q-9|m1|1", ItemOutcome("ok", (OrderOutcome("single", "[[4]]", score=4),), score=4)
    )
    assert isinstance(graded, SingleJudgment) and (graded.question_id, graded.score) == ("q-9", 4)
    with pytest.raises(ValueError, match="not an MT-Bench item id"):
        judgment_from_item("just-an-id", outcome)
