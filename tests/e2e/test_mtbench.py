"""`judge mtbench run` in service mode against the real API and worker (real model), then `show`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import DEFAULT_MODEL
from app.mtbench import formats
from app.mtbench.formats import ModelAnswer, Question
from app.mtbench.remote import read_ledger
from app.mtbench.runner import is_error
from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e


def _bench(root: Path) -> Path:
    questions = [
        Question(1, "writing", ("Name a colour of the sky.", "Name another one.")),
        Question(2, "math", ("What is 2 + 2?", "And 3 + 3?"), reference=("2 + 2 = 4.", "3 + 3 = 6.")),
    ]
    formats.write_jsonl(root / "question.jsonl", [formats.question_json(q) for q in questions])
    replies = {
        "good": [("Blue.", "Grey, on a cloudy day."), ("4", "6")],
        "bad": [("Green cheese.", "Purple cheese."), ("5", "9")],
    }
    for model, turns in replies.items():
        rows = [
            formats.answer_json(ModelAnswer(q.question_id, model, t))
            for q, t in zip(questions, turns, strict=True)
        ]
        formats.write_jsonl(root / "model_answer" / f"{model}.jsonl", rows)
    return root


def test_mtbench_run_on_the_service_then_show(production_service: Service, tmp_path: Path) -> None:
    bench = _bench(tmp_path / "bench")
    args = [
        "mtbench", "run", "--bench-dir", str(bench), "--mode", "pairwise-all", "--judge-model", DEFAULT_MODEL,
        "--url", production_service.url, "--key", str(production_service.key), "--max-tokens", "8",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 7), f"{result.output}\n{production_service.output()}"
    out = bench / "model_judgment" / f"{DEFAULT_MODEL}_pair.jsonl"
    records = formats.read_pair_judgments(out)
    # 7: some of the real model's 8-token judgments have no verdict (written as FastChat's `error`).
    assert result.exit_code == (7 if any(is_error(j) for j in records) else 0), result.output
    # 2 questions x 2 turns x 1 pair, each judged in both orders by the real model.
    assert sorted((j.question_id, j.turn) for j in records) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for j in records:
        assert (j.model_1, j.model_2, j.judge[0]) == ("bad", "good", DEFAULT_MODEL)
        assert j.g1_judgment.startswith("Verdict: [[") and j.g2_judgment.startswith("Verdict: [[")
        assert {j.g1_winner, j.g2_winner} <= {"model_1", "model_2", "tie", "error"}
    # Game 1 shows model_1 ("bad") as assistant A, game 2 shows "good" first.
    writing = next(j for j in records if j.question_id == 1 and j.turn == 1)
    assert writing.g1_user_prompt.index("Green cheese.") < writing.g1_user_prompt.index("Blue.")
    assert writing.g2_user_prompt.index("Blue.") < writing.g2_user_prompt.index("Green cheese.")
    math = next(j for j in records if j.question_id == 2 and j.turn == 2)
    assert math.judge[1] == "pairwise-multi-ref" and "3 + 3 = 6." in math.g1_user_prompt
    # One job per template, each item tagged with its judgment key.
    ledger = read_ledger(out.with_name(f"{DEFAULT_MODEL}_pair.jobs.jsonl"))
    assert len(ledger) == 4 and sorted(i for e in ledger for i in e["ids"]) == [
        "1|bad|good|1", "1|bad|good|2", "2|bad|good|1", "2|bad|good|2",
    ]  # fmt: skip
    with production_service.client() as client:
        page = client.get(f"/v1/jobs/{ledger[0]['job_id']}/results").json()
        job = client.get(f"/v1/jobs/{ledger[0]['job_id']}").json()
    assert [r["id"] for r in page["results"]] == ledger[0]["ids"]
    assert job["metadata"]["mtbench_run"] == f"bench/pairwise-all/{DEFAULT_MODEL}"

    shown = CliRunner().invoke(
        cli,
        [
            "mtbench",
            "show",
            "--bench-dir",
            str(bench),
            "--mode",
            "pairwise-all",
            "--judge-model",
            DEFAULT_MODEL,
        ],
    )
    assert shown.exit_code == 0, shown.output
    header, *rows = [line.split() for line in shown.output.splitlines()[2:]]
    assert header[:4] == ["model", "win", "loss", "tie"]
    usable = sum("error" not in (j.g1_winner, j.g2_winner) for j in records)
    if usable:
        assert {r[0] for r in rows} == {"good", "bad"} and all(
            int(r[1]) + int(r[2]) + int(r[3]) == usable for r in rows
        )

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and '"to_judge": 0' in again.output

    # FastChat-format judge prompts become templates of the tenant; importing again reuses them.
    prompts = str(Path(__file__).parents[1] / "mtbench" / "data" / "judge_prompts.jsonl")
    service = ["--url", production_service.url, "--key", str(production_service.key)]
    first = CliRunner().invoke(cli, ["mtbench", "import-prompts", prompts, *service])
    assert first.exit_code == 0, first.output
    assert "mtbench-pair-math-v1-multi-turn@1\t(FastChat 'pair-math-v1-multi-turn')" in first.output
    second = CliRunner().invoke(cli, ["mtbench", "import-prompts", prompts, *service])
    assert second.output == first.output
    with production_service.client() as client:
        listed = {t["name"]: t for t in client.get("/v1/templates").json()["templates"]}
    assert listed["mtbench-pair-v2-multi-turn"]["placeholders"] == ["conversation_a", "conversation_b"]
