"""Multi-process end-to-end fixtures: a real API process and a real worker process, with the real
default model, Postgres and Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy.engine import make_url

from app.auth.service import create_key
from app.core.config import DEFAULT_MODEL, Settings
from app.core.db import Database
from app.core.migrate import upgrade
from app.models.artifacts import pull_default_model
from app.models.registry import register
from tests.conftest import TEST_REDIS_URL, scratch_database

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The converted default model, pulled once into the usual data directory and reused."""
    return pull_default_model(Settings().models_dir).parent


@dataclass
class Service:
    url: str
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]
    key: str | None = None

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.Client(base_url=self.url, timeout=600, headers=headers)

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logs)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "wb")  # noqa: SIM115 - the file outlives this function, closed with the process
    return subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT, stdout=fh, stderr=fh)


def wait_ready(service: Service, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in service.procs:
            if p.poll() is not None:
                raise AssertionError(f"a service process exited with {p.returncode}:\n{service.output()}")
        try:
            if httpx.get(service.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"service not ready in {timeout} s:\n{service.output()}")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture(scope="module")
def production_service(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`judge serve` and `judge worker` as separate processes on Postgres and Redis."""
    db_url = scratch_database("judge_e2e")
    upgrade(db_url)
    redis_url = TEST_REDIS_URL.rsplit("/", 1)[0] + "/14"
    Redis.from_url(redis_url).flushdb()
    settings = Settings(database_url=db_url, redis_url=redis_url, data_dir=model_cache.parent)
    db = Database(settings.sqlalchemy_url)
    with db.unit_of_work() as session:
        register(session, settings, DEFAULT_MODEL, model_cache / DEFAULT_MODEL)
        _, key = create_key(session, "default", ["judge", "jobs"], "e2e")
    db.dispose()

    logs = tmp_path_factory.mktemp("e2e-logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUDGE_")}
    env.update(
        DATABASE_URL=make_url(db_url).render_as_string(hide_password=False),
        REDIS_URL=redis_url,
        JUDGE_DATA_DIR=str(model_cache.parent),
        JUDGE_BATCH_SIZE="8",
    )
    port = free_port()
    procs = [
        _spawn(["worker", "--model", DEFAULT_MODEL], env, logs / "worker.log"),
        _spawn(["serve", "--port", str(port)], env, logs / "api.log"),
    ]
    service = Service(f"http://127.0.0.1:{port}", procs, [logs / "worker.log", logs / "api.log"], key)
    try:
        wait_ready(service)
        yield service
    finally:
        stop(procs)
