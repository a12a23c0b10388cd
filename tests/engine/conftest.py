"""Engine fixtures: the real default model, fetched and converted once and kept under the data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import Settings
from app.engine.transformers_backend import TransformersEngine
from app.models.artifacts import pull_default_model


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The converted default model folder under ``$JUDGE_DATA_DIR/models`` (pulled on first use)."""
    return pull_default_model(Settings().models_dir)


@pytest.fixture(scope="session")
def wide(default_model_path: Path) -> Iterator[TransformersEngine]:
    """The default model in batches of 8, prefix caching and our decoder on (shared by the engine
    tests: one load)."""
    eng = TransformersEngine(default_model_path, "smol", device="cpu", dtype="float32", batch_size=8)
    yield eng
    eng.close()
