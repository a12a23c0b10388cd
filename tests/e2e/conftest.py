"""Multi-process end-to-end fixtures: a real API process and a real worker process, with the real
default model, Postgres and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import Settings
from app.models.artifacts import pull_default_model
from tests.conftest import TEST_E2E_REDIS_URL
from tests.e2e.services import ROOT, Service, free_port, make_stack, stop, wait_ready

__all__ = ["ROOT", "Service", "free_port", "stop", "wait_ready"]


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The converted default model, pulled once into the usual data directory and reused."""
    return pull_default_model(Settings().models_dir).parent


@pytest.fixture(scope="module")
def production_service(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`judge serve`, `judge worker` and `judge trainer` as separate processes on Postgres and Redis
    (``procs``: the worker, the API, the trainer)."""
    stack = make_stack(
        "judge_e2e",
        TEST_E2E_REDIS_URL,
        model_cache,
        tmp_path_factory.mktemp("e2e-logs"),
        {"JUDGE_BATCH_SIZE": "8"},
    )
    worker = stack.worker()
    service = stack.serve(free_port())
    service.procs.insert(0, worker)
    service.logs.insert(0, stack.logs / "worker.log")
    service.procs.append(stack.trainer())
    service.logs.append(stack.logs / "trainer.log")
    try:
        wait_ready(service)
        yield service
    finally:
        stack.close()
