"""`judge mtbench show --stats`: FastChat's tables unchanged, then the run's statistics as `judge jobs
summary` computes them (app.summaries): intervals, Bradley–Terry ratings for pairwise-all, the
length-controlled win rate against a baseline, mean scores per category."""

from __future__ import annotations

import re
from pathlib import Path

from app.mtbench import formats
from app.mtbench.summary import file_observations
from tests.mtbench.conftest import JUDGMENTS, TINY_BENCH
from tests.mtbench.test_cli import _judge

PAIRS = JUDGMENTS / "judge-x_pair.jsonl"
SINGLES = JUDGMENTS / "judge-x_single.jsonl"


def _rows(text: str, header: str) -> dict[str, list[str]]:
    """The tab-separated table under ``header`` (its first column as keys)."""
    block = text.split(header + "\n", 1)[1].split("\n\n", 1)[0]
    return {line.split("\t")[0]: line.split("\t")[1:] for line in block.splitlines()}


def test_without_stats_the_tables_are_fastchats_alone() -> None:
    plain = _judge("show", "--input-file", PAIRS, "--mode", "pairwise-baseline")
    with_stats = _judge(
        "show", "--input-file", PAIRS, "--mode", "pairwise-baseline", "--bench-dir", TINY_BENCH, "--stats"
    )
    assert plain.exit_code == 0 and with_stats.exit_code == 0, with_stats.output
    assert "bootstrap" not in plain.output and "95% CI" not in plain.output
    assert with_stats.stdout.startswith(plain.stdout)  # FastChat's table first, unchanged


def test_pairwise_baseline_gets_intervals_and_the_length_controlled_win_rate() -> None:
    shown = _judge(
        "show", "--input-file", PAIRS, "--mode", "pairwise-baseline", "--bench-dir", TINY_BENCH,
        "--stats", "--rounds", "300", "--seed", "7",
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    # 9 judgments against the baseline, one with a game in error; 6 of the other 8 agree in both games.
    assert "items              9 (8 ok, 1 errors, 0 pending)" in out
    assert "consistency        75.0% of 8 judged in both orders" in out
    assert "bootstrap          300 rounds, seed 7" in out
    wins = _rows(out, "model\tgames\twin\tloss\ttie\twin rate\t95% CI\tadjusted\t95% CI")
    assert wins["beta"][:5] == ["4", "2", "1", "1", "50.0%"]  # FastChat's table: beta 2 1 1
    low, high = map(float, re.findall(r"[\d.]+", wins["beta"][5]))
    assert low <= 50.0 <= high
    lc = _rows(out, "model\tgames\twin rate\tLC win rate (vs gpt-3.5-turbo)\tlength weight")
    assert set(lc) == {"alpha", "beta"} and all(row[2].endswith("%") for row in lc.values())
    assert "Bradley-Terry" not in out
    again = _judge(
        "show", "--input-file", PAIRS, "--mode", "pairwise-baseline", "--bench-dir", TINY_BENCH,
        "--stats", "--rounds", "300", "--seed", "7",
    )  # fmt: skip
    assert again.stdout == out  # the seed makes the intervals reproducible


def test_pairwise_all_gets_bradley_terry_ratings() -> None:
    shown = _judge("show", "--input-file", PAIRS, "--mode", "pairwise-all", "--stats", "--rounds", "200")
    assert shown.exit_code == 0, shown.output
    ratings = _rows(shown.stdout, "model\tBradley-Terry (Elo scale)\t95% CI")
    assert set(ratings) == {"alpha", "beta", "gpt-3.5-turbo"}
    assert float(ratings["alpha"][0]) > float(ratings["gpt-3.5-turbo"][0])  # alpha won more of its games
    assert "LC win rate" not in shown.stdout


def test_single_gets_mean_scores_per_category_with_intervals() -> None:
    shown = _judge("show", "--input-file", SINGLES, "--bench-dir", TINY_BENCH, "--stats", "--rounds", "200")
    assert shown.exit_code == 0, shown.output
    assert "items              12 (10 ok, 2 errors, 0 pending)" in shown.stdout
    block = shown.stdout.split("model\tcategory\tgrades\tmean score\t95% CI\n", 1)[1]
    rows = [line.split("\t") for line in block.splitlines()]
    assert rows[0][:4] == ["alpha", "(all)", "5", "6.40"]  # FastChat's average: alpha 6.400000
    assert {r[1] for r in rows} == {"(all)", "math", "reasoning", "writing"}


def test_a_pair_record_becomes_an_item_in_the_services_conventions(tmp_path: Path) -> None:
    """Game 1 is the order AB, game 2 BA, both in model_1 = A labels; games that differ make a tie."""
    judgments = formats.read_pair_judgments(PAIRS)
    answers = formats.read_answer_dir(TINY_BENCH / "model_answer")
    seen = file_observations(judgments, {}, answers)
    first = next(r for r in seen.results if r.id == "2|alpha|gpt-3.5-turbo|1")
    assert [(o.order, o.verdict) for o in first.orders] == [("AB", "A"), ("BA", "B")]
    assert first.verdict == "tie" and first.consistent is False
    game = next(g for g in seen.games if g.instruction == "2|1" and g.model_a == "alpha")
    assert game.length_a == len(answers["alpha"][2].turns[0]) > 0
