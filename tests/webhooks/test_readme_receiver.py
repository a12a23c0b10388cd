"""The README's webhook receiver, run as written against real deliveries on loopback (issue 19, item 7):
keyed with the embedded mode's secret file the way the README says, it accepts the service's signature;
keyed with the file's text as it is (its trailing newline included), the service's signature is refused."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from app.core.config import Settings
from app.embedded import dev_webhook_secret
from app.webhooks.deliverer import deliver_due
from tests.conftest import RollbackDatabase
from tests.webhooks.test_delivery import _delivery, _end, _job

README = Path(__file__).resolve().parents[2] / "README.md"
SERVE_LINE = 'HTTPServer(("127.0.0.1", 9000), Hook).serve_forever()'


def readme_receiver_code() -> str:
    """The README's receiver, but its last line (which serves on port 9000 for ever)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [code] = [block for block in blocks if "class Hook(BaseHTTPRequestHandler)" in block]
    body, _, last = code.rstrip().rpartition("\n")
    assert last == SERVE_LINE
    return body


@contextmanager
def readme_receiver() -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """The README's receiver serving on a free loopback port: its URL and what it printed."""
    printed: list[tuple[Any, ...]] = []
    namespace: dict[str, Any] = {"__name__": "readme_receiver", "print": lambda *args: printed.append(args)}
    exec(compile(readme_receiver_code(), "README.md", "exec"), namespace)
    server = HTTPServer(("127.0.0.1", 0), namespace["Hook"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/judge", printed
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def embedded_secret(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings signing with the embedded mode's own secret file; the receiver finds it by JUDGE_DATA_DIR."""
    data_dir = tmp_path / "embedded-data"
    data_dir.mkdir()
    monkeypatch.setenv("JUDGE_DATA_DIR", str(data_dir))
    monkeypatch.delenv("JUDGE_WEBHOOK_SECRET", raising=False)
    signing = dev_webhook_secret(settings.model_copy(update={"data_dir": data_dir}))
    return signing.model_copy(update={"webhook_retry_backoff_seconds": 0.0})


def test_the_readme_receiver_accepts_a_real_delivery_and_the_secret_is_the_hex_text(
    db: RollbackDatabase, redis: Redis, embedded_secret: Settings
) -> None:
    text = (embedded_secret.data_dir / "webhook-secret").read_text(encoding="utf-8")
    assert re.fullmatch(r"[0-9a-f]{64}\n", text), "the file: 64 hex characters and a newline"
    assert embedded_secret.webhook_secret is not None
    assert embedded_secret.webhook_secret.get_secret_value() == text.strip()

    with readme_receiver() as (url, printed), httpx.Client(timeout=5.0) as http:
        job_id = _job(db, url, progress_done=3)
        _end(db, redis, job_id)
        assert deliver_due(db, embedded_secret, http) == 1
        delivery = _delivery(db, job_id)
        assert delivery is not None
        assert (delivery.status, delivery.last_status_code) == ("delivered", 204)
        assert printed == [(str(delivery.id), str(job_id), "succeeded", {"done": 3, "total": 3, "failed": 0})]

        # Keyed with the file's text as it is (trailing newline and all), the signature does not verify.
        with_newline = embedded_secret.model_copy(update={"webhook_secret": SecretStr(text)})
        other_job = _job(db, url, progress_done=3)
        _end(db, redis, other_job)
        assert deliver_due(db, with_newline, http) == 1
        refused = _delivery(db, other_job)
        assert refused is not None
        assert (refused.status, refused.last_status_code) == ("pending", 401)
        assert len(printed) == 1
        # The same event, signed as the README says, is then accepted.
        assert deliver_due(db, embedded_secret, http) == 1
        accepted = _delivery(db, other_job)
        assert accepted is not None and (accepted.status, accepted.attempts) == ("delivered", 2)
        assert printed[1][:3] == (str(refused.id), str(other_job), "succeeded")
