"""An app served by a real uvicorn server in a thread, on a free loopback port (tests that need a live
connection: event streams, shutdown)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI


@dataclass(frozen=True)
class Served:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serving(app: FastAPI, drain_seconds: int | None = None) -> Iterator[Served]:
    """``app`` under uvicorn until the block ends. Setting ``server.should_exit`` starts its shutdown as
    SIGTERM does (open requests get ``drain_seconds``, uvicorn's ``timeout_graceful_shutdown``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=drain_seconds)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
