"""show_result's tables on the fixture judgments; every number below was worked out by hand from
tests/mtbench/data/judgments."""

from __future__ import annotations

import pytest

from app.mtbench import formats, tables
from tests.mtbench.conftest import JUDGMENTS

SINGLE = formats.read_single_judgments(JUDGMENTS / "judge-x_single.jsonl")
PAIRS = formats.read_pair_judgments(JUDGMENTS / "judge-x_pair.jsonl")


def _rows(table: tables.ScoreTable) -> list[tuple[str, float, int]]:
    return [(r.model, pytest.approx(r.score), r.count) for r in table.rows]  # type: ignore[misc]


def test_single_tables_leave_out_errors() -> None:
    first, second, average = tables.single_tables(SINGLE)
    # alpha turn 1: 8, 6, (-1 left out) -> 7.0; beta turn 1: 9, 6, 7.5 -> 7.5
    assert first.title == "First turn" and _rows(first) == [("beta", 7.5, 3), ("alpha", 7.0, 2)]
    # alpha turn 2: 5, 9, 4 -> 6.0; beta turn 2: 2, (-1), 5 -> 3.5
    assert second.title == "Second turn" and _rows(second) == [("alpha", 6.0, 3), ("beta", 3.5, 2)]
    # Average over every grade, not of the turn means: alpha 32/5, beta 29.5/5.
    assert average.title == "Average" and _rows(average) == [("alpha", 6.4, 5), ("beta", 5.9, 5)]
    only_beta = tables.single_tables(SINGLE, models={"beta"})
    assert [r.model for t in only_beta for r in t.rows] == ["beta", "beta", "beta"]


def test_first_turn_only_still_shows_second_turn_and_average() -> None:
    # show_result.py prints "Second turn" and "Average" for MT-Bench whatever turns the file holds.
    first_turn = [j for j in SINGLE if j.turn == 1]
    first, second, average = tables.single_tables(first_turn)
    assert (first.title, second.title, average.title) == ("First turn", "Second turn", "Average")
    assert second.rows == ()
    assert _rows(average) == [("beta", 7.5, 3), ("alpha", 7.0, 2)]
    text = tables.format_single([first, second, average])
    assert "########## Second turn ##########\nmodel  turn      score\n(no grades)" in text
    assert text.index("Second turn") < text.index("Average")


def test_pairwise_against_the_baseline() -> None:
    rows = tables.pairwise_table(PAIRS, baseline="gpt-3.5-turbo")
    # beta: wins q2t1, q3t2; loses q1t1; tie q1t2 (game 1 said tie). alpha: win q1t1, loss q1t2, ties
    # q2t1 (the games disagree) and q3t1; q2t2 has an error and the alpha-beta game no baseline.
    assert [(r.model, r.win, r.loss, r.tie) for r in rows] == [("beta", 2, 1, 1), ("alpha", 1, 1, 2)]
    beta, alpha = rows
    assert (beta.win_rate, beta.loss_rate, beta.win_rate_adjusted) == (0.5, 0.25, 0.625)
    assert (alpha.win_rate, alpha.loss_rate, alpha.win_rate_adjusted) == (0.25, 0.25, 0.5)


def test_pairwise_all_pairs() -> None:
    rows = tables.pairwise_table(PAIRS)
    assert [(r.model, r.win, r.loss, r.tie) for r in rows] == [
        ("alpha", 2, 1, 2),  # (2 + 1) / 5 = 0.6
        ("beta", 2, 2, 1),  # 2.5 / 5 = 0.5
        ("gpt-3.5-turbo", 2, 3, 3),  # 3.5 / 8 = 0.4375
    ]
    assert [r.win_rate_adjusted for r in rows] == [0.6, 0.5, 0.4375]
    # FastChat's --model-list keeps the games whose model_1 is listed.
    assert [r.model for r in tables.pairwise_table(PAIRS, models={"beta"})] == ["beta", "gpt-3.5-turbo"]


def test_formatted_tables() -> None:
    text = tables.format_single(tables.single_tables(SINGLE))
    assert "########## First turn ##########" in text and "########## Average ##########" in text
    rows = [line.split() for line in text.splitlines()]
    assert ["beta", "1", "7.500000"] in rows and ["alpha", "6.400000"] in rows
    assert rows.index(["beta", "1", "7.500000"]) < rows.index(["alpha", "1", "7.000000"])
    table = tables.format_pairwise(tables.pairwise_table(PAIRS, baseline="gpt-3.5-turbo"))
    assert table.splitlines()[0].split() == [
        "model",
        "win",
        "loss",
        "tie",
        "win_rate",
        "loss_rate",
        "win_rate_adjusted",
    ]
    assert table.splitlines()[1].split() == ["beta", "2", "1", "1", "0.500000", "0.250000", "0.625000"]


def test_leaderboard_rows() -> None:
    graded = tables.leaderboard(SINGLE)
    assert [(r.rank, r.model, r.score, r.judgments, r.errors) for r in graded] == [
        (1, "alpha", pytest.approx(6.4), 6, 1),
        (2, "beta", pytest.approx(5.9), 6, 1),
    ]
    assert graded[1].turn_scores == {1: 7.5, 2: 3.5}
    compared = tables.leaderboard(PAIRS, baseline="gpt-3.5-turbo")
    assert [(r.rank, r.model, r.win, r.loss, r.tie, r.win_rate_adjusted) for r in compared] == [
        (1, "beta", 2, 1, 1, 0.625),
        (2, "alpha", 1, 1, 2, 0.5),
    ]
    # alpha: 6 records (one with an error) against anyone, the baseline has no row.
    assert (compared[1].judgments, compared[1].errors) == (6, 1)
    only_errors = [j for j in SINGLE if j.score == -1]
    assert [(r.rank, r.model, r.score) for r in tables.leaderboard(only_errors)] == [
        (1, "alpha", None),
        (2, "beta", None),
    ]
    with pytest.raises(ValueError, match="not both"):
        tables.leaderboard([*SINGLE, *PAIRS])
