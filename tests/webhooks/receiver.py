"""A real webhook receiver for tests: a threading HTTP server on 127.0.0.1 that records every call and
answers with scripted status codes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    # The caller's side of the connection (address, port): calls on one connection share it.
    peer: tuple[str, int] = ("", 0)


@dataclass
class Receiver:
    url: str
    calls: list[Call] = field(default_factory=list)
    # Status codes to answer, in order; 200 once they run out.
    statuses: list[int] = field(default_factory=list)
    # Seconds to take over each call (to make concurrent deliverers overlap).
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200


@contextmanager
def running_receiver(host: str = "127.0.0.1", keep_alive: bool = False) -> Iterator[Receiver]:
    """A receiver listening on ``host`` (a loopback address), on a free port; with ``keep_alive`` it
    speaks HTTP/1.1 and keeps each connection open for the caller's next call."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.calls.append(Call(self.path, headers, body, self.client_address[:2]))
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.next_status()
            answer = b"ok" if status < 300 else b"receiver says no"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://{host}:{server.server_address[1]}/hooks/judge")
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
