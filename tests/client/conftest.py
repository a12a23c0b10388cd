"""Client tests: the real service, live on a local port (see ``live.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.live import LiveService, live_service, migrated_scratch
from tests.conftest import TEST_REDIS_URL


@pytest.fixture(autouse=True)
def _no_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client reads its URL and key from JUDGE_URL / JUDGE_API_KEY when not given: tests give theirs."""
    monkeypatch.delenv("JUDGE_URL", raising=False)
    monkeypatch.delenv("JUDGE_API_KEY", raising=False)


@pytest.fixture(scope="session")
def live_db_url() -> str:
    return migrated_scratch("judge_client_tests")


@pytest.fixture
def service(live_db_url: str, tmp_path: Path) -> Iterator[LiveService]:
    with live_service(live_db_url, TEST_REDIS_URL, tmp_path / "data") as svc:
        yield svc


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
