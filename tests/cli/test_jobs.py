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
    for meaning in ("0 success", "3 service unreachable", "4 authentication", "5 not found", "6 timed out"):
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
