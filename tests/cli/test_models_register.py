"""``judge models register``: registering a model again clears its workers' load failures, so its jobs
are taken again."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis
from typer.testing import CliRunner

from app.cli import cli
from app.jobs.queue import queue_name
from app.models.availability import load_failures, report_load_failure
from tests.conftest import TEST_REDIS_URL


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    return path


def test_registering_a_model_again_clears_the_load_failures_its_workers_reported(
    runner: CliRunner, live_db_url: str, redis: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_DATABASE_URL", live_db_url)
    monkeypatch.setenv("JUDGE_REDIS_URL", TEST_REDIS_URL)
    report_load_failure(redis, queue_name("fixed-model"), "fixed-model", "its folder is missing", "w1")
    report_load_failure(redis, queue_name("other-model"), "other-model", "CUDA out of memory", "w2")
    folder = _model_folder(tmp_path / "fixed-model")
    result = runner.invoke(cli, ["models", "register", "fixed-model", str(folder)])
    assert result.exit_code == 0, result.output
    assert [f.model for f in load_failures(redis)] == ["other-model"]
