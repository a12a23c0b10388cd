"""``judge batch FILE.jsonl`` against the live service: results, --json, progress, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from app.cli import cli
from app.models import repository as models_repo
from tests.client.live import LiveService, free_port, scripted_judge
from tests.workers.conftest import ScriptedEngine, user_text
from workers import context

PAIRS: list[dict[str, Any]] = [
    {"id": "p0", "question": "What is 2+2?", "answer_a": "It is four.", "answer_b": "5"},
    {"id": "p1", "question": "Capital of France?", "answer_a": "Rome", "answer_b": "It is Paris."},
    {"id": "p2", "question": "Name a colour.", "answer_a": "red", "answer_b": "tan"},
]


def _jsonl(path: Path, rows: list[dict[str, Any]], blank_line_after: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if blank_line_after is not None:
        lines.insert(blank_line_after, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(runner: CliRunner, service: LiveService, *args: str, **kwargs: Any) -> Result:
    return runner.invoke(cli, [*args, "--url", service.url, "--key", service.key], **kwargs)


def _batch(runner: CliRunner, service: LiveService, *args: str, **kwargs: Any) -> Result:
    return _run(runner, service, "batch", *args, "--poll", "0.05", **kwargs)


def plain(text: str) -> str:
    """Rich's boxed error text as one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]+", " ", text).split())


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_results_to_a_file_in_input_order_across_chunks(
    runner: CliRunner, service: LiveService, tmp_path: Path
) -> None:
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS, blank_line_after=1)
    out = tmp_path / "verdicts.jsonl"
    result = _batch(runner, service, str(items), "-o", str(out), "--chunk-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    rows = _lines(out.read_text())
    assert [(r["index"], r["id"], r["verdict"], r["consistent"]) for r in rows] == [
        (0, "p0", "A", True),
        (1, "p1", "B", True),
        (2, "p2", "tie", False),
    ]
    assert rows[0]["job_id"] == rows[1]["job_id"] != rows[2]["job_id"]
    assert [o["order"] for o in rows[0]["orders"]] == ["AB", "BA"]
    assert "3 item(s): 3 ok, 0 error(s); verdicts A 1, B 1, tie 1; 1 inconsistent" in result.stderr
    assert "3/3" in result.stderr  # the progress bar's last state


def test_results_to_stdout_are_pure_jsonl(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS[:2])
    result = _batch(runner, service, str(items), "--swap", "none", "--quiet")
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert [(r["id"], r["verdict"], len(r["orders"])) for r in rows] == [("p0", "A", 1), ("p1", "B", 1)]


def test_json_summary_on_stdout(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS)
    out = tmp_path / "out.jsonl"
    result = _batch(runner, service, str(items), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert (summary["items"], summary["ok"], summary["errors"], summary["inconsistent"]) == (3, 3, 0, 1)
    assert summary["verdicts"] == {"A": 1, "B": 1, "tie": 1}
    assert summary["output"] == str(out) and len(summary["jobs"]) == 1


def test_single_grading_from_stdin(runner: CliRunner, service: LiveService) -> None:
    rows = [{"question": "q", "answer": "one two"}, {"question": "q", "answer": "one two three four"}]
    text = "\n".join(json.dumps(r) for r in rows)
    result = _batch(
        runner, service, "-", "--kind", "single", "--scale-min", "0", "--scale-max", "5", input=text
    )
    assert result.exit_code == 0, result.output
    assert [r["score"] for r in _lines(result.stdout)] == [2.0, 4.0]
    assert "mean score 3.00" in result.stderr
    [job] = [j for j in json.loads(_run(runner, service, "jobs", "list", "--json").stdout)["jobs"]]
    assert job["kind"] == "judge_single" and job["params"]["scale"] == {"min": 0.0, "max": 5.0}


def test_usage_errors_exit_2(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    good = _jsonl(tmp_path / "good.jsonl", PAIRS)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PAIRS[0]) + "\n{not json\n")
    cases = [
        ([str(bad)], "bad.jsonl line 2: not JSON"),
        ([str(tmp_path / "missing.jsonl")], "cannot read"),
        ([str(good), "--kind", "single", "--swap", "none"], "--swap applies to --kind pairwise"),
        ([str(good), "--scale-min", "1"], "both --scale-min and --scale-max"),
        ([str(good), "--kind", "triple"], "triple"),
    ]
    for args, message in cases:
        result = _batch(runner, service, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in plain(result.stderr), (args, result.stderr)
    assert json.loads(_run(runner, service, "jobs", "list", "--json").stdout) == {"jobs": []}


def test_items_the_service_rejects_name_their_line(
    runner: CliRunner, service: LiveService, tmp_path: Path
) -> None:
    rows: list[dict[str, Any]] = [*PAIRS, {"question": "q", "answer_a": "a", "answer_b": "b", "turn": 2}]
    items = _jsonl(tmp_path / "items.jsonl", rows, blank_line_after=0)
    result = _batch(runner, service, str(items), "--chunk-size", "2")
    assert result.exit_code == 2
    assert "items.jsonl line 5: HTTP 422: items[1].turn: turn 2 was requested" in result.stderr


def test_a_failed_job_exits_1(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    def broken(conv: Any) -> str:
        raise RuntimeError("engine fell over")

    service.engine.reply = broken
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS[:1])
    result = _batch(runner, service, str(items), "-o", str(tmp_path / "out.jsonl"), "--json")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and "engine fell over" in summary["jobs"][0]["error"]


def test_timeout_exits_6(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    service.running.clear()
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS)
    result = _batch(runner, service, str(items), "--timeout", "0.3")
    assert result.exit_code == 6, result.output
    assert "still queued" in result.stderr


def test_unreachable_service_exits_3(runner: CliRunner, tmp_path: Path) -> None:
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS)
    result = runner.invoke(
        cli, ["batch", str(items), "--url", f"http://127.0.0.1:{free_port()}", "--key", "k"]
    )
    assert result.exit_code == 3, result.output
    assert "cannot reach the service" in result.stderr


def test_bad_or_missing_key_exits_4(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS)
    result = runner.invoke(
        cli, ["batch", str(items)], env={"JUDGE_URL": service.url, "JUDGE_API_KEY": "jk_x_y"}
    )
    assert result.exit_code == 4, result.output
    assert "HTTP 401" in result.stderr
    assert runner.invoke(cli, ["batch", str(items), "--url", service.url]).exit_code == 4
    jobs_only = service.new_key(["jobs"])
    result = runner.invoke(cli, ["batch", str(items), "--url", service.url, "--key", jobs_only])
    assert result.exit_code == 4 and "HTTP 403" in result.stderr


def test_the_development_key_is_the_default(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    data = tmp_path / "cli-data"
    data.mkdir()
    (data / "dev-api-key").write_text(service.key + "\n")
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS[:1])
    result = runner.invoke(cli, ["batch", str(items), "--url", service.url, "--poll", "0.05"])
    assert result.exit_code == 0, result.output


def _fail_marked(conv: Any) -> str:
    """The live judge, but no verdict for a question that says ZZFAIL."""
    return "no idea" if "ZZFAIL" in user_text(conv) else scripted_judge(conv)


def test_json_without_output_holds_the_results_and_failed_items_exit_7(
    runner: CliRunner, service: LiveService, tmp_path: Path
) -> None:
    """Issue 19, items 4 and 5: one JSON document on stdout; items that failed beside some that did not
    make exit 7, with the job succeeded and its failed count."""
    service.engine.reply = _fail_marked
    rows = [PAIRS[0], {**PAIRS[1], "question": "ZZFAIL capital of France?"}, PAIRS[2]]
    items = _jsonl(tmp_path / "pairs.jsonl", rows)
    result = _batch(runner, service, str(items), "--json", "--swap", "none")
    assert result.exit_code == 7, result.output
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["ok"], summary["errors"], summary["output"]) == (
        "succeeded",
        2,
        1,
        "stdout",
    )
    assert summary["jobs"][0]["failed"] == 1
    assert [(r["index"], r["id"], r["status"]) for r in summary["results"]] == [
        (0, "p0", "ok"),
        (1, "p1", "error"),
        (2, "p2", "ok"),
    ]


def test_every_item_failed_fails_the_job_and_exits_1(
    runner: CliRunner, service: LiveService, tmp_path: Path
) -> None:
    service.engine.reply = _fail_marked
    rows = [{**row, "question": f"ZZFAIL {row['question']}"} for row in PAIRS]
    result = _batch(runner, service, str(_jsonl(tmp_path / "pairs.jsonl", rows)), "--swap", "none")
    assert result.exit_code == 1, result.output
    assert len(_lines(result.stdout)) == 3
    assert "3 item(s): 0 ok, 3 error(s)" in result.stderr
    assert re.search(r"job \S+ failed: all 3 items failed: ", result.stderr), result.stderr


def test_self_consistency_samples_show_each_items_votes_and_agreement(
    runner: CliRunner, service: LiveService, tmp_path: Path
) -> None:
    calls = iter(range(10_000))

    def wavering(conv: Any) -> str:  # every third sample of an order changes its mind
        answer = scripted_judge(conv)
        return ("B]]" if answer == "A]]" else "A]]") if next(calls) % 3 == 2 else answer

    steady, service.engine.reply = service.engine.reply, wavering
    try:
        items = _jsonl(tmp_path / "pairs.jsonl", PAIRS[:2])
        result = _batch(runner, service, str(items), "--samples", "3", "--temperature", "0.7")
    finally:
        service.engine.reply = steady
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    for row in rows:
        assert sum(row["votes"].values()) == 6  # 3 samples of each order
        assert row["agreement"] == max(row["votes"].values()) / 6
        assert len(row["orders"]) == 6 and {o["sample"] for o in row["orders"]} == {0, 1, 2}
    mean = 100 * sum(r["agreement"] for r in rows) / len(rows)
    split = sum(1 for r in rows if r["agreement"] < 1)
    assert split > 0
    assert f"agreement {mean:.0f}% on average, {split} item(s) split" in result.stderr
    [job] = json.loads(_run(runner, service, "jobs", "list", "--json").stdout)["jobs"]
    assert job["params"]["samples"] == 3


def test_a_jury_of_two_judges_with_weights_and_templates(
    runner: CliRunner, service: LiveService, tmp_path: Path
) -> None:
    """``--judge`` twice: one jury job; each result carries both judges' verdicts and their votes."""
    with service.state.db.unit_of_work() as session:
        models_repo.upsert(session, "judge-b", "transformers", None)
    pool = context.current().engines
    pool.load_engine = lambda model: ScriptedEngine(scripted_judge)
    pool.max_extra = 1
    default = service.state.settings.default_model
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS[:2])
    result = _batch(
        runner,
        service,
        str(items),
        "--judge",
        default,
        "--judge",
        "judge-b, weight=2",
        "--aggregate",
        "weighted",
    )
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert [r["verdict"] for r in rows] == ["A", "B"]
    for row in rows:
        assert [(j["model"], j["weight"]) for j in row["judges"]] == [(default, 1.0), ("judge-b", 2.0)]
        assert row["agreement"] == 1.0
    [job] = json.loads(_run(runner, service, "jobs", "list", "--json").stdout)["jobs"]
    assert job["params"]["jury"]["aggregate"] == "weighted"
    assert "agreement 100% on average, 0 item(s) split" in result.stderr


def test_bad_judge_specs_are_usage_errors(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    items = _jsonl(tmp_path / "pairs.jsonl", PAIRS[:1])
    for spec, said in [
        ("weight=2", "give the judge's model first"),
        ("judge-b,colour=red", "template=NAME or weight=W"),
        ("judge-b,weight=heavy", "weight must be a number"),
    ]:
        result = _batch(runner, service, str(items), "--judge", "smol", "--judge", spec)
        assert result.exit_code == 2, result.output
        assert said in plain(result.stderr)
    result = _batch(runner, service, str(items), "--aggregate", "mean")
    assert result.exit_code == 2 and "--aggregate applies to a jury" in plain(result.stderr)
