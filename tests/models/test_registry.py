"""The model registry: registering local folders, finding a served model on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.models import repository
from app.models.registry import ModelUnavailable, ensure_local_model, register_local
from tests.conftest import RollbackDatabase


def _fake_model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    return path


def test_register_local_folder(settings: Settings, db: RollbackDatabase, tmp_path: Path) -> None:
    folder = _fake_model_folder(tmp_path / "my-judge")
    record = register_local(settings, db, "my-judge", folder)
    assert record.artifact_path == str(folder.resolve())
    with db.unit_of_work() as session:
        assert repository.get_by_name(session, "my-judge") is not None
    # Re-registering moves the artifact instead of duplicating the model.
    other = _fake_model_folder(tmp_path / "v2")
    assert register_local(settings, db, "my-judge", other).artifact_path == str(other.resolve())


def test_register_rejects_a_folder_without_a_model(
    settings: Settings, db: RollbackDatabase, tmp_path: Path
) -> None:
    with pytest.raises(ModelUnavailable, match="not a model folder"):
        register_local(settings, db, "empty", tmp_path)


def test_ensure_local_model_finds_the_data_dir_copy_and_registers_it(
    settings: Settings, db: RollbackDatabase
) -> None:
    folder = _fake_model_folder(settings.models_dir / "local-judge")
    assert ensure_local_model(settings, db, "local-judge") == folder
    with db.unit_of_work() as session:
        record = repository.get_by_name(session, "local-judge")
        assert record is not None and record.artifact_path == str(folder)


def test_unknown_model_that_cannot_be_pulled(settings: Settings, db: RollbackDatabase) -> None:
    with pytest.raises(ModelUnavailable, match="judge models pull"):
        ensure_local_model(settings, db, "nowhere-model")
