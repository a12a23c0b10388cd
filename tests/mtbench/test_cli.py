"""`judge mtbench` end to end in this process: run (in-process judging with a scripted engine), resume,
show and agreement on the files it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.mtbench import cli as mtbench_cli
from app.mtbench import formats
from tests.mtbench.conftest import JUDGE_PROMPTS, JUDGMENTS, OracleEngine

runner = CliRunner()


@pytest.fixture
def oracle(monkeypatch: pytest.MonkeyPatch) -> OracleEngine:
    engine = OracleEngine()
    monkeypatch.setattr(mtbench_cli, "load_engine", lambda *args: engine)
    monkeypatch.delenv("JUDGE_SERVICE_URL", raising=False)
    monkeypatch.delenv("JUDGE_URL", raising=False)
    return engine


def _judge(*args: Any) -> Any:
    return runner.invoke(cli, ["mtbench", *map(str, args)])


def test_run_pairwise_baseline_then_show(bench: Path, oracle: OracleEngine) -> None:
    result = _judge(
        "run", "--bench-dir", bench, "--mode", "pairwise-baseline", "--judge-model", "oracle", "--verbose"
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output.split("Stats:\n", 1)[1].split("\n}", 1)[0] + "\n}")
    assert stats["total_num_matches"] == 12 and stats["to_judge"] == 12 and stats["judging"] == "in-process"
    assert "[12/12] question: 3, turn: 2, model_1: beta, model_2: gpt-3.5-turbo" in result.output
    out = bench / "model_judgment" / "oracle_pair.jsonl"
    assert len(formats.read_pair_judgments(out)) == 12

    shown = _judge("show", "--bench-dir", bench, "--mode", "pairwise-baseline", "--judge-model", "oracle")
    assert shown.exit_code == 0, shown.output
    rows = [line.split() for line in shown.output.splitlines()]
    assert ["alpha", "6", "0", "0", "1.000000", "0.000000", "1.000000"] in rows
    assert ["beta", "0", "6", "0", "0.000000", "1.000000", "0.000000"] in rows

    # Everything is judged: a second run resumes with nothing left to do.
    again = _judge("run", "--bench-dir", bench, "--mode", "pairwise-baseline", "--judge-model", "oracle")
    assert again.exit_code == 0 and '"to_judge": 0' in again.output and len(oracle.prompts) == 24

    # Agreement of the file with the fixture's human votes (turn 1: q1-3 alpha wins; q1 beta loses...).
    agreed = _judge("agreement", out, JUDGMENTS / "human_votes.jsonl")
    assert agreed.exit_code == 0, agreed.output
    lines = agreed.output.splitlines()
    assert lines[0] == "voters in oracle_pair.jsonl: counted model judge 12; left out none"
    assert lines[1].startswith("voters in human_votes.jsonl: counted human (expert_*) 11; left out author")
    assert lines[2] == "turn 1 with tie. #total: 7, #agree: 3, ratio: 0.43"
    # Author votes count only when asked: q1 alpha/gpt-3.5 author_1 says gpt-3.5 (oracle: alpha), q2
    # author_2 a tie (oracle: alpha).
    with_authors = _judge("agreement", out, JUDGMENTS / "human_votes.jsonl", "--include-authors")
    assert "turn 1 with tie. #total: 9, #agree: 3, ratio: 0.33" in with_authors.output.splitlines()


def test_run_single_with_fastchat_prompts(bench: Path, oracle: OracleEngine) -> None:
    result = _judge(
        "run", "--bench-dir", bench, "--mode", "single", "--judge-model", "oracle",
        "--judge-prompts", JUDGE_PROMPTS, "--model-list", "alpha,beta", "--first-n", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = formats.read_single_judgments(bench / "model_judgment" / "oracle_single.jsonl")
    assert len(records) == 2 * 2 * 2
    assert {j.judge[1] for j in records} == {"single-v1", "single-v1-multi-turn", "single-math-v1",
                                             "single-math-v1-multi-turn"}  # fmt: skip
    shown = _judge("show", "--bench-dir", bench, "--judge-model", "oracle")
    lines = [line.split() for line in shown.output.splitlines()]
    assert (
        ["alpha", "1", "8.000000"] in lines
        and ["beta", "2", "3.000000"] in lines
        and ["alpha", "8.000000"] in lines
    )
    # The same file cannot be resumed with other prompts.
    other = _judge("run", "--bench-dir", bench, "--judge-model", "oracle", "--model-list", "alpha,beta")
    assert other.exit_code == 2 and "made with prompt" in other.output


def test_clear_errors(bench: Path, oracle: OracleEngine, tmp_path: Path) -> None:
    missing = _judge("run", "--bench-dir", tmp_path / "nowhere", "--judge-model", "oracle")
    assert missing.exit_code == 2 and "question.jsonl: no such file" in missing.output
    logprobs = _judge(
        "run", "--bench-dir", bench, "--judge-model", "oracle", "--judge-prompts", JUDGE_PROMPTS,
        "--verdict-mode", "logprobs", "--model-list", "alpha",
    )  # fmt: skip
    assert logprobs.exit_code == 2 and "asks the judge to reason first" in logprobs.output
    (bench / "model_answer" / "beta.jsonl").write_text('{"question_id": 1}\n')
    broken = _judge("run", "--bench-dir", bench, "--judge-model", "oracle")
    assert broken.exit_code == 2 and "beta.jsonl line 1: 'choices' must be" in broken.output
    mode = _judge("run", "--bench-dir", bench, "--mode", "pairs")
    assert (
        mode.exit_code == 2 and "--mode must be one of single, pairwise-baseline, pairwise-all" in mode.output
    )
    assert oracle.prompts == []


def test_dry_run_judges_nothing(bench: Path, oracle: OracleEngine) -> None:
    result = _judge(
        "run", "--bench-dir", bench, "--mode", "pairwise-all", "--judge-model", "oracle", "--dry-run"
    )
    assert result.exit_code == 0 and '"total_num_matches": 18' in result.output
    assert oracle.prompts == [] and not (bench / "model_judgment").exists()


def test_show_refuses_a_baseline_missing_from_the_file() -> None:
    pairs = JUDGMENTS / "judge-x_pair.jsonl"
    shown = _judge("show", "--input-file", pairs, "--mode", "pairwise-baseline", "--baseline-model", "gpt-4")
    assert shown.exit_code == 2
    assert "warning: the baseline model 'gpt-4' plays in no judgment of" in shown.output
    assert "(models there: alpha, beta, gpt-3.5-turbo)" in shown.output
    assert "win_rate" not in shown.output
    ok = _judge("show", "--input-file", pairs, "--mode", "pairwise-baseline")
    assert ok.exit_code == 0 and "win_rate_adjusted" in ok.output


def test_show_single_turn_one_only(tmp_path: Path) -> None:
    lines = (JUDGMENTS / "judge-x_single.jsonl").read_text().splitlines()
    first_turn = tmp_path / "j_single.jsonl"
    first_turn.write_text("\n".join(line for line in lines if '"turn": 1' in line) + "\n")
    shown = _judge("show", "--input-file", first_turn)
    assert shown.exit_code == 0, shown.output
    titles = [line for line in shown.output.splitlines() if line.startswith("##########")]
    assert titles == [
        "########## First turn ##########",
        "########## Second turn ##########",
        "########## Average ##########",
    ]
