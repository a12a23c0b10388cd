"""``judge models pull ORG/NAME[@REVISION]`` through the installed entry point, offline, on a Hub cache
built locally: the model is registered from its cached snapshot; a missing model or revision exits 1
saying which; the default-model pull and ``judge models register`` are unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_batch import plain
from tests.e2e.services import ROOT
from tests.models.hub_cache import COMMIT, HUB_REPO, build_hub_cache


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    return path


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """The snapshot folder of HUB_REPO in a Hub cache at ``tmp_path / 'hub'``."""
    return build_hub_cache(_model_folder(tmp_path / "model"), tmp_path / "hub")


def judge(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUDGE_", "HF_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(JUDGE_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"))
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pull_registers_the_cached_snapshot_under_the_repository_id(hub: Path, tmp_path: Path) -> None:
    result = judge(tmp_path, "models", "pull", HUB_REPO, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{HUB_REPO} ready at {hub}"
    listed = judge(tmp_path, "models", "list")
    assert f"{HUB_REPO}\ttransformers\t{hub}" in listed.stdout.splitlines()

    by_commit = judge(tmp_path, "models", "pull", f"{HUB_REPO}@{COMMIT}", "--name", "smol-pinned", "-q")
    assert by_commit.returncode == 0, by_commit.stderr
    assert by_commit.stdout.strip() == f"smol-pinned ready at {hub}"


def test_a_missing_model_or_revision_exits_1_saying_which(hub: Path, tmp_path: Path) -> None:
    missing = judge(tmp_path, "models", "pull", "nobody/no-such-model", "-q")
    assert missing.returncode == 1
    assert "error: model nobody/no-such-model is not in the Hub cache" in missing.stderr
    assert "HF_HUB_OFFLINE=1" in missing.stderr and "Traceback" not in missing.stderr

    revision = judge(tmp_path, "models", "pull", f"{HUB_REPO}@v9.9", "-q")
    assert revision.returncode == 1
    assert f"error: revision v9.9 of {HUB_REPO} is not in the Hub cache" in revision.stderr
    assert "(cached: aaaaaaaa" in revision.stderr and "main" in revision.stderr
    assert "Traceback" not in revision.stderr

    assert HUB_REPO not in judge(tmp_path, "models", "list").stdout  # nothing registered


def test_a_repository_without_safetensors_is_refused(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "model")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    build_hub_cache(folder, tmp_path / "hub", "someone/pickled")
    result = judge(tmp_path, "models", "pull", "someone/pickled", "-q")
    assert result.returncode == 1
    assert "someone/pickled has no loadable safetensors model" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-a-hub-id"], "is not a Hub model id"),
        ([f"{HUB_REPO}@"], "nothing after '@'"),
        (["--name", "x"], "--name is for a Hub model"),
    ],
)
def test_a_bad_argument_exits_2_naming_it(tmp_path: Path, args: list[str], message: str) -> None:
    result = judge(tmp_path, "models", "pull", *args)
    assert result.returncode == 2
    assert message in plain(result.stderr)


def test_register_still_takes_a_local_folder(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "mine")
    result = judge(tmp_path, "models", "register", "mine", str(folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"registered mine (transformers) at {folder}"
