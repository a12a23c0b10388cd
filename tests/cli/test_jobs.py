"""``judge jobs get|list|wait|cancel`` against the live service; Ctrl-C exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from judge_client import Job, Judge
from tests.cli.test_batch import plain
from tests.client.live import LiveService
from tests.workers.conftest import user_text

ROOT = Path(__file__).resolve().parents[2]
PAIR = {"question": "What is 2+2?", "answer_a": "It is four.", "answer_b": "5"}


def _run(runner: CliRunner, service: LiveService, *args: str) -> Result:
    return runner.invoke(cli, [*args, "--url", service.url, "--key", service.key])


def _submit(service: LiveService, n: int = 3, wait: float | None = None) -> Job:
    with Judge(service.url, service.key) as judge:
        # (Not from the verdict cache: each test's jobs judge the same items, and some must stay queued.)
        return judge.submit_batch([PAIR] * n, wait=wait, cache="off")


def test_help_documents_the_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    text = plain(result.stdout)
    for meaning in (
        "0 success",
        "3 service unreachable",
        "4 authentication",
        "5 not found",
        "6 timed out",
        "7 some items failed",
    ):
        assert meaning in text
    assert "130 interrupted" in text


def test_get_as_text_and_json(runner: CliRunner, service: LiveService) -> None:
    job = _submit(service, wait=30)
    result = _run(runner, service, "jobs", "get", job.id)
    assert result.exit_code == 0, result.output
    assert f"job       {job.id}" in result.stdout and "status    succeeded" in result.stdout
    data = json.loads(_run(runner, service, "jobs", "get", job.id, "--json").stdout)
    assert (data["id"], data["status"], data["progress"]) == (
        job.id,
        "succeeded",
        {"done": 3, "total": 3, "failed": 0},
    )


def test_list_with_filters(runner: CliRunner, service: LiveService, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(PAIR) + "\n")
    labelled = runner.invoke(
        cli, ["batch", str(items), "-q", "--metadata", "run:7", "--url", service.url, "--key", service.key]
    )
    assert labelled.exit_code == 0, labelled.output
    [row] = [json.loads(line) for line in labelled.stdout.splitlines()]
    found = json.loads(_run(runner, service, "jobs", "list", "--metadata", "run:7", "--json").stdout)["jobs"]
    assert [(j["id"], j["metadata"]) for j in found] == [(row["job_id"], {"run": "7"})]
    assert _run(runner, service, "jobs", "list", "--metadata", "run").exit_code == 2
    done = _submit(service, wait=30)
    service.running.clear()
    queued = _submit(service)
    listed = json.loads(_run(runner, service, "jobs", "list", "--json").stdout)["jobs"]
    assert [j["id"] for j in listed] == [queued.id, done.id, row["job_id"]]
    only = json.loads(_run(runner, service, "jobs", "list", "--status", "queued", "--json").stdout)["jobs"]
    assert [j["id"] for j in only] == [queued.id]
    text = _run(runner, service, "jobs", "list", "--limit", "1")
    assert text.exit_code == 0 and text.stdout.count("\n") == 1 and queued.id in text.stdout
    assert _run(runner, service, "jobs", "list", "--status", "sleeping").exit_code == 2


def test_wait_shows_progress_and_exits_0(runner: CliRunner, service: LiveService) -> None:
    job = _submit(service, n=4)
    result = _run(runner, service, "jobs", "wait", job.id, "--poll", "0.05", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert "4/4" in result.stderr


def test_wait_timeout_exits_6(runner: CliRunner, service: LiveService) -> None:
    service.running.clear()
    job = _submit(service)
    result = _run(runner, service, "jobs", "wait", job.id, "--poll", "0.05", "--timeout", "0.3", "-q")
    assert result.exit_code == 6, result.output
    assert f"job {job.id} still queued" in result.stderr


def test_cancel_then_wait_exits_1_and_cancel_again_after_success_exits_1(
    runner: CliRunner, service: LiveService
) -> None:
    service.running.clear()
    job = _submit(service)
    result = _run(runner, service, "jobs", "cancel", job.id)
    assert (result.exit_code, result.stdout.strip()) == (0, f"{job.id} cancelled")
    waited = _run(runner, service, "jobs", "wait", job.id, "--poll", "0.05")
    assert waited.exit_code == 1 and "status    cancelled" in waited.stdout
    service.running.set()
    done = _submit(service, wait=30)
    again = _run(runner, service, "jobs", "cancel", done.id, "--json")
    assert again.exit_code == 1 and again.stdout == ""
    assert "HTTP 409" in again.stderr and "already succeeded" in again.stderr


@pytest.mark.parametrize("command", ["get", "wait", "cancel"])
def test_unknown_job_exits_5_and_malformed_id_exits_2(
    runner: CliRunner, service: LiveService, command: str
) -> None:
    missing = uuid.uuid4()
    result = _run(runner, service, "jobs", command, str(missing))
    assert result.exit_code == 5, result.output
    assert f"no job {missing}" in result.stderr
    assert _run(runner, service, "jobs", command, "not-a-job").exit_code == 2


def test_ctrl_c_exits_130(service: LiveService) -> None:
    service.running.clear()
    job = _submit(service)
    env = {**os.environ, "JUDGE_URL": service.url, "JUDGE_API_KEY": service.key}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "jobs", "wait", job.id, "--poll", "0.1", "-q"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()  # the command has found the job and starts waiting
        assert first.startswith(f"waiting for job {job.id}"), first + proc.communicate()[1].decode()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert f"interrupted: job {job.id} goes on" in err.decode()
    with Judge(service.url, service.key) as judge:
        assert judge.job(job).status == "queued"  # the job is left alone


def _some_fail(service: LiveService, n: int, failing: set[int]) -> Job:
    """A judged job of ``n`` items whose items at ``failing`` get no verdict."""
    service.engine.reply = lambda conv: "no idea" if "ZZFAIL" in user_text(conv) else "A]]"
    items = [{**PAIR, "question": f"{'ZZFAIL' if i in failing else 'fine'} {i}"} for i in range(n)]
    with Judge(service.url, service.key) as judge:
        return judge.submit_batch(items, swap="none", wait=30, cache="off")


def test_failed_items_show_in_get_and_list_and_make_wait_exit_7(
    runner: CliRunner, service: LiveService
) -> None:
    """Issue 19, item 4: `jobs get` reads 0 whatever the job; `jobs wait` says 7 for failed items."""
    job = _some_fail(service, 4, {1, 3})
    got = _run(runner, service, "jobs", "get", job.id)
    assert got.exit_code == 0, got.output
    assert "status    succeeded" in got.stdout and "progress  4/4 (2 failed)" in got.stdout
    assert (
        f"{job.id}\tjudge_pairwise\tsucceeded\t4/4 (2 failed)\t"
        in _run(runner, service, "jobs", "list").stdout
    )
    waited = _run(runner, service, "jobs", "wait", job.id, "--json")
    assert waited.exit_code == 7, waited.output
    assert json.loads(waited.stdout)["progress"] == {"done": 4, "total": 4, "failed": 2}

    every = _some_fail(service, 2, {0, 1})
    failed = _run(runner, service, "jobs", "wait", every.id)
    assert failed.exit_code == 1, failed.output
    assert "status    failed" in failed.stdout and "error     all 2 items failed: " in failed.stdout


def test_results_fetches_every_page_filtered_to_stdout_or_a_file(
    runner: CliRunner, service: LiveService, tmp_path: Path
) -> None:
    """Issue 19, item 5: `judge jobs results ID [--status ...] [-o FILE]`."""
    job = _some_fail(service, 5, {0, 3})
    every = _run(runner, service, "jobs", "results", job.id, "--page-size", "2")
    assert every.exit_code == 0, every.output
    rows = [json.loads(line) for line in every.stdout.splitlines()]
    assert [(r["index"], r["status"]) for r in rows] == [
        (0, "error"),
        (1, "ok"),
        (2, "ok"),
        (3, "error"),
        (4, "ok"),
    ]
    assert f"5 result(s) of job {job.id} written to stdout" in every.stderr

    out = tmp_path / "errors.jsonl"
    errors = _run(
        runner, service, "jobs", "results", job.id, "--status", "error", "-o", str(out), "--page-size", "1"
    )
    assert errors.exit_code == 0 and errors.stdout == "", errors.output
    failed = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in failed] == [0, 3] and all(r["error"] for r in failed)

    assert _run(runner, service, "jobs", "results", job.id, "--status", "lost").exit_code == 2
    missing = _run(runner, service, "jobs", "results", str(uuid.uuid4()))
    assert missing.exit_code == 5, missing.output
