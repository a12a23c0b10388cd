"""Client tests: the real service, live on a local port (see ``live.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.live import LiveService, live_service, migrated_scratch
from tests.conftest import TEST_REDIS_URL


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
