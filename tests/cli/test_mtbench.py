"""`judge mtbench` against the live service as the other commands reach it (issue 19, item 5): --url or
JUDGE_URL and the default key, the old --service still read; failed judgments exit 7; import-prompts
exits 4 on a refused key; show finds the baseline of a pairwise-baseline file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.engine.base import Conversation
from tests.client.live import LiveService, scripted_judge
from tests.mtbench.conftest import JUDGE_PROMPTS, JUDGMENTS, TINY_BENCH
from tests.workers.conftest import user_text


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    target = tmp_path / "tiny_bench"
    shutil.copytree(TINY_BENCH, target)
    return target


def _stats(result: Result) -> dict[str, Any]:
    return dict(json.loads(result.stdout.split("Stats:\n", 1)[1].split("\n}", 1)[0] + "\n}"))


def _no_lighthouse(conv: Conversation) -> str:
    """The live judge, but no verdict on question 1 (the lighthouse)."""
    return "no idea" if "lighthouse" in user_text(conv) else scripted_judge(conv)


def test_run_judges_on_JUDGE_URL_exits_7_for_failed_judgments_and_show_finds_the_baseline(
    runner: CliRunner, service: LiveService, bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_URL", service.url)
    monkeypatch.setenv("JUDGE_API_KEY", service.key)
    service.engine.reply = _no_lighthouse
    result = runner.invoke(
        cli, ["mtbench", "run", "--bench-dir", str(bench), "--mode", "pairwise-baseline", "-q"]
    )
    assert result.exit_code == 7, result.output
    assert _stats(result)["judging"] == f"service {service.url}"
    assert "done: 12 judgment(s) written (4 error(s))" in result.stdout
    assert "error: 4 judgment(s) ended in error" in result.stderr
    assert service.engine.batches, "judged on the service, not in this process"

    shown = runner.invoke(cli, ["mtbench", "show", "--bench-dir", str(bench), "--mode", "pairwise-baseline"])
    assert shown.exit_code == 0, shown.output
    assert "Baseline: gpt-3.5-turbo" in shown.stdout and "win_rate_adjusted" in shown.stdout


def test_in_process_and_the_deprecated_service_option(
    runner: CliRunner, service: LiveService, bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = ["mtbench", "run", "--bench-dir", str(bench), "--dry-run"]
    monkeypatch.setenv("JUDGE_URL", service.url)
    local = runner.invoke(cli, [*run, "--in-process"])
    assert local.exit_code == 0 and _stats(local)["judging"] == "in-process", local.output
    monkeypatch.delenv("JUDGE_URL")
    old = runner.invoke(cli, [*run, "--service", service.url, "--key", service.key])
    assert old.exit_code == 0 and _stats(old)["judging"] == f"service {service.url}", old.output
    assert "--service and JUDGE_SERVICE_URL are deprecated" in old.stderr


def test_import_prompts_with_a_refused_key_exits_4(runner: CliRunner, service: LiveService) -> None:
    refused = runner.invoke(
        cli, ["mtbench", "import-prompts", str(JUDGE_PROMPTS), "--url", service.url, "--key", "jk_nope"]
    )
    assert refused.exit_code == 4, refused.output
    assert "HTTP 401" in refused.stderr
    unreachable = runner.invoke(
        cli, ["mtbench", "import-prompts", str(JUDGE_PROMPTS), "--url", "http://127.0.0.1:9"]
    )
    assert unreachable.exit_code == 3, unreachable.output
    ok = runner.invoke(
        cli, ["mtbench", "import-prompts", str(JUDGE_PROMPTS), "--url", service.url, "--key", service.key]
    )
    assert ok.exit_code == 0, ok.output
    assert "mtbench-pair-v2@1\t(FastChat 'pair-v2')" in ok.stdout


def test_show_without_a_baseline_that_the_file_does_not_have(runner: CliRunner, tmp_path: Path) -> None:
    every_pair = tmp_path / "all_pair.jsonl"
    text = (JUDGMENTS / "judge-x_pair.jsonl").read_text().replace("gpt-3.5-turbo", "zeta")
    rows = [json.loads(line) for line in text.splitlines()]
    swapped = [
        {**r, "model_1": r["model_2"], "model_2": r["model_1"]} if i % 2 else r for i, r in enumerate(rows)
    ]
    every_pair.write_text("".join(json.dumps(r) + "\n" for r in swapped))
    shown = runner.invoke(
        cli, ["mtbench", "show", "--input-file", str(every_pair), "--mode", "pairwise-baseline"]
    )
    assert shown.exit_code == 2, shown.output
    assert "cannot tell the baseline of" in shown.stderr and "--baseline-model" in shown.stderr
