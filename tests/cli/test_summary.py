"""``judge jobs summary`` against the live service."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli import cli
from judge_client import Judge
from tests.client.live import LiveService

PAIR = {"question": "What is 2+2?", "answer_a": "It is four, of course.", "answer_b": "5"}


def test_summary_as_text_and_json(runner: CliRunner, service: LiveService) -> None:
    with Judge(service.url, service.key) as judge:
        job = judge.submit_batch([PAIR] * 3, wait=30, metadata={"run": "c1"})
    auth = ["--url", service.url, "--key", service.key]
    text = runner.invoke(cli, ["jobs", "summary", job.id, "--rounds", "50", *auth])
    assert text.exit_code == 0, text.output
    assert "items              3 (3 ok, 0 errors, 0 pending)" in text.stdout
    assert "consistency        100.0% of 3 judged in both orders" in text.stdout
    assert "A\t3\t3\t0\t0\t100.0%" in text.stdout and "LC win rate (vs B)" in text.stdout
    data = json.loads(runner.invoke(cli, ["jobs", "summary", "--metadata", "run:c1", "--json", *auth]).stdout)
    assert (data["jobs"], data["bootstrap_rounds"], data["baseline"]) == ([job.id], 1000, "B")
    assert runner.invoke(cli, ["jobs", "summary", *auth]).exit_code == 2
    assert runner.invoke(cli, ["jobs", "summary", "--metadata", "run:none", *auth]).exit_code == 5
