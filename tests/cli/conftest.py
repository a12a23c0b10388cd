"""CLI tests: ``judge`` through typer's CliRunner, against the real service live on a local port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.core.config import get_settings
from tests.client.live import LiveService, live_service, migrated_scratch
from tests.conftest import TEST_REDIS_URL


@pytest.fixture(scope="session")
def live_db_url() -> str:
    return migrated_scratch("judge_cli_tests")


@pytest.fixture
def service(live_db_url: str, tmp_path: Path) -> Iterator[LiveService]:
    with live_service(live_db_url, TEST_REDIS_URL, tmp_path / "data") as svc:
        yield svc


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose settings point at an empty data directory (no development key, no database)."""
    for name in (
        "JUDGE_URL",
        "JUDGE_API_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "JUDGE_DATABASE_URL",
        "JUDGE_REDIS_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUDGE_DATA_DIR", str(tmp_path / "cli-data"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
