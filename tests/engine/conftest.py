"""Engine fixtures: the real default model, fetched and converted once and kept under the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.models.artifacts import pull_default_model


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The converted default model folder under ``$JUDGE_DATA_DIR/models`` (pulled on first use)."""
    return pull_default_model(Settings().models_dir)
