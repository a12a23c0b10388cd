"""Real service processes for end-to-end tests and the reliability scripts: `judge serve` and
`judge worker` spawned on a scratch Postgres database and a Redis database, with the real model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis import Redis
from sqlalchemy.engine import make_url

from app.auth.service import create_key
from app.core.config import DEFAULT_MODEL, Settings
from app.core.db import Database
from app.core.migrate import upgrade
from app.models.registry import register
from tests.conftest import scratch_database

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    url: str
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]
    key: str | None = None
    # A key of the same tenant with the `admin` scope too: what operators see (models' folders).
    operator_key: str | None = None

    def client(self, operator: bool = False) -> httpx.Client:
        key = self.operator_key if operator else self.key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=600, headers=headers)

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logs)


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m app.cli ARGS`` with ``env``, its output appended to ``log``."""
    fh = open(log, "ab")  # noqa: SIM115 - the file outlives this function, closed with the process
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


@dataclass
class Stack:
    """A migrated scratch database with the default model registered and a key, plus the environment
    that makes `judge serve` / `judge worker` use them."""

    db_url: str
    redis_url: str
    key: str
    env: dict[str, str]
    logs: Path
    operator_key: str | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def serve(self, port: int, env: dict[str, str] | None = None, workers: int = 1) -> Service:
        log = self.logs / f"api-{port}.log"
        args = ["serve", "--port", str(port), "--workers", str(workers)]
        proc = spawn(args, {**self.env, **(env or {})}, log)
        self.procs.append(proc)
        return Service(f"http://127.0.0.1:{port}", [proc], [log], self.key, self.operator_key)

    def worker(self, name: str = "worker", env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.logs / f"{name}.log"
        proc = spawn(["worker", "--model", DEFAULT_MODEL], {**self.env, **(env or {})}, log)
        self.procs.append(proc)
        return proc

    def trainer(self, name: str = "trainer", env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`judge trainer`: the workers' SFT/DPO run in its children."""
        log = self.logs / f"{name}.log"
        proc = spawn(["trainer"], {**self.env, **(env or {})}, log)
        self.procs.append(proc)
        return proc

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        stop(self.procs)


def make_stack(
    db_name: str, redis_url: str, model_dir: Path, logs: Path, settings: dict[str, str] | None = None
) -> Stack:
    """Scratch database ``db_name`` (dropped and re-created), Redis ``redis_url`` (flushed), the model
    at ``model_dir / DEFAULT_MODEL`` registered, a key of tenant ``default``; ``settings`` are extra
    JUDGE_* variables for every process."""
    db_url = scratch_database(db_name)
    upgrade(db_url)
    Redis.from_url(redis_url).flushdb()
    data_dir = model_dir.parent
    config = Settings(database_url=db_url, redis_url=redis_url, data_dir=data_dir)
    db = Database(config.sqlalchemy_url)
    with db.unit_of_work() as session:
        register(session, config, DEFAULT_MODEL, model_dir / DEFAULT_MODEL)
        _, key = create_key(session, "default", ["judge", "jobs"], "e2e")
        _, operator_key = create_key(session, "default", ["judge", "jobs", "admin"], "e2e operator")
    db.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUDGE_")}
    env.update(
        DATABASE_URL=make_url(db_url).render_as_string(hide_password=False),
        REDIS_URL=redis_url,
        JUDGE_DATA_DIR=str(data_dir),
        **(settings or {}),
    )
    logs.mkdir(parents=True, exist_ok=True)
    return Stack(db_url, redis_url, key, env, logs, operator_key)
