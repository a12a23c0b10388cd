"""Embedded mode: one command runs the API, an in-process Redis (fakeredis's TCP server), a worker
process and a trainer process, on a SQLite file under the data directory. The API, the worker and the
trainer run the same code as in production; only the connection URLs differ."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from fakeredis import TcpFakeServer
from pydantic import SecretStr

from app.core.config import Settings
from app.core.db import Database

if TYPE_CHECKING:
    from fastapi import FastAPI
    from uvicorn import Server

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def fake_redis_server(host: str = "127.0.0.1") -> Iterator[str]:
    """A Redis-protocol server in a thread; yields its URL."""
    server = TcpFakeServer((host, 0), server_type="redis")
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True)
    thread.start()
    try:
        yield f"redis://{host}:{server.server_address[1]}/0"
    finally:
        server.shutdown()
        server.server_close()


def _die_with_parent(parent_pid: int | None = None) -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the `judge serve` process dies, even
    by SIGKILL, so an embedded worker is never orphaned (it could not work without its parent's
    in-process Redis anyway). The worker's SIGTERM path stops a training it runs (see
    ``app.training.runner``), so the training goes too. With ``parent_pid``, a child whose parent
    died before the request took effect exits at once."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if parent_pid is not None and os.getppid() != parent_pid:
            os._exit(1)


class WorkerProcess:
    """Runs `judge worker` as a child process and restarts it if it dies (RQ's worker wants a main
    thread of its own for its signal handling)."""

    role = "worker"

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.env = dict(os.environ)
        self.env["JUDGE_REDIS_URL"] = redis_url
        self.env["JUDGE_DATA_DIR"] = str(settings.data_dir)
        if settings.webhook_secret is not None:
            self.env["JUDGE_WEBHOOK_SECRET"] = settings.webhook_secret.get_secret_value()
        self.env["JUDGE_WEBHOOK_PRIVATE_ADDRESSES"] = str(settings.webhook_private_addresses).lower()
        self.env.pop("REDIS_URL", None)
        self.model = settings.default_model
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"{self.role}-supervisor", daemon=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "app.cli", "worker", "--model", self.model]

    def _spawn(self) -> subprocess.Popen[bytes]:
        setup = functools.partial(_die_with_parent, os.getpid())
        # A process group of its own: a terminal's Ctrl-C reaches `judge serve` only, which stops its
        # children in order (a child stopped by the same Ctrl-C would be restarted by its supervisor).
        return subprocess.Popen(self.command(), env=self.env, preexec_fn=setup, process_group=0)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._proc = self._spawn()
            code = self._proc.wait()
            if self._stopping.is_set():
                return
            log.error("embedded %s exited with %s; restarting in 2 s", self.role, code)
            time.sleep(2)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def kill(self) -> None:
        """Stop now, without waiting for the work in hand (a second Ctrl-C)."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()


class TrainerProcess(WorkerProcess):
    """Runs `judge trainer` as a child process, restarted if it dies: the worker's SFT/DPO trainings
    run there (``JUDGE_TRAINER=queue``), not in the process that serves judgments. It dies with `judge
    serve` like the worker, and its SIGTERM path ends the training it runs."""

    role = "trainer"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "app.cli", "trainer"]


def dev_key(settings: Settings, db: Database) -> str | None:
    """At the first start (no key exists yet), make a development key for tenant ``default`` with
    every scope, print it, and keep it in ``<data dir>/dev-api-key`` (mode 0600)."""
    from app.auth import repository as keys_repo
    from app.auth import service as keys_service
    from app.auth.keys import SCOPES

    path = settings.data_dir / "dev-api-key"
    with db.unit_of_work() as session:
        if keys_repo.any_key(session):
            return None
        _, token = keys_service.create_key(session, "default", list(SCOPES), "embedded development key")
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    log.warning("development API key (tenant default, all scopes), also in %s:\n  %s", path, token)
    return token


def dev_webhook_secret(settings: Settings) -> Settings:
    """Without JUDGE_WEBHOOK_SECRET, the embedded mode signs webhooks with a secret of its own, made at
    the first start and kept in ``<data dir>/webhook-secret`` (mode 0600), so `callback_url` works
    out of the box and receivers can verify signatures."""
    # One user's development machine: receivers on localhost are the point.
    settings = settings.model_copy(update={"webhook_private_addresses": True})
    if settings.webhook_secret is not None:
        return settings
    path = settings.data_dir / "webhook-secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        path.chmod(0o600)
        log.warning("webhook signing secret made for development: %s", path)
    secret = SecretStr(path.read_text(encoding="utf-8").strip())
    return settings.model_copy(update={"webhook_secret": secret})


def _api_server(app: FastAPI, host: str, port: int) -> Server:
    from uvicorn import Config, Server

    class ApiServer(Server):
        """uvicorn's server, except that the signal which stopped it is not raised again once it has
        stopped (uvicorn does, to end the process): `judge serve` then stops its worker and trainer,
        and only then its in-process Redis, which they use to the end."""

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return ApiServer(Config(app, host=host, port=port, log_level="info"))


def stop_children(children: list[WorkerProcess]) -> None:
    """Stop ``children`` one after another (each finishes or hands back the work in hand); a further
    Ctrl-C or SIGTERM meanwhile kills them at once."""

    def hurry(signum: int, frame: FrameType | None) -> None:
        log.warning("signal %s: killing the embedded processes", signum)
        for child in children:
            child.kill()

    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, hurry) for sig in _STOP_SIGNALS} if main else {}
    try:
        for child in children:
            log.info("stopping the embedded %s", child.role)
            child.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_embedded(settings: Settings, host: str, port: int) -> None:
    from app.core.migrate import upgrade
    from app.main import create_app
    from app.models.registry import ensure_local_model

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    db = Database(settings.sqlalchemy_url)
    try:
        # Pull before the worker starts, so the first start prints one clear progress story.
        ensure_local_model(settings, db, settings.default_model)
        dev_key(settings, db)
    finally:
        db.dispose()
    settings = dev_webhook_secret(settings)
    with fake_redis_server() as redis_url:
        live = settings.model_copy(update={"redis_url": redis_url})
        children: list[WorkerProcess] = []
        if settings.embedded_worker:
            children.append(WorkerProcess(live, redis_url))
        if settings.embedded_trainer and settings.trainer == "queue":
            children.append(TrainerProcess(live, redis_url))
        for child in children:
            child.start()
        try:
            _api_server(create_app(live), host, port).run()
        finally:
            # The worker first: its waiting trainings are answered while the trainer still runs; the
            # in-process Redis last, when no child uses it any more.
            stop_children(children)
