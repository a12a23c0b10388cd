"""Stopping `judge serve` (embedded mode): a terminal's Ctrl-C (SIGINT to its whole process group) or a
SIGTERM to it stops its worker and trainer first and its in-process Redis last, exits 0, and prints no
traceback; no child is restarted or left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.services import ROOT, Service, free_port, wait_ready

pytestmark = pytest.mark.e2e


def _children(pid: int) -> list[int]:
    """(Each thread lists the children it started: the supervisor threads start them.)"""
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"


@pytest.mark.parametrize(
    ("how", "sig"), [("ctrl-c", signal.SIGINT), ("sigterm", signal.SIGTERM)], ids=["ctrl-c", "sigterm"]
)
def test_stopping_serve_stops_its_children_then_redis_quietly(
    model_cache: Path, tmp_path: Path, how: str, sig: signal.Signals
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(model_cache, target_is_directory=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JUDGE_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["JUDGE_DATA_DIR"] = str(data)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        # A session of its own, as a terminal gives the command it runs: Ctrl-C goes to its group.
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(f"http://127.0.0.1:{port}", [proc], [log])
    try:
        wait_ready(service)
        deadline = time.monotonic() + 120  # the worker has loaded the model and listens on its queue
        while "Listening on judge." not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "Listening on judge." in log.read_text(), service.output()
        children = _children(proc.pid)
        assert len(children) == 2  # the worker and the trainer
        key = (data / "dev-api-key").read_text().strip()
        body = {
            "max_tokens": 4,
            "items": [{"question": "Is water wet?", "answer_a": "Yes.", "answer_b": "No."}],
        }
        r = httpx.post(
            f"{service.url}/v1/judgments/pairwise",
            params={"wait": 120},
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=180,
        )
        assert r.status_code == 200, (
            f"{r.text}\n{service.output()}"
        )  # the worker has served a job (and is idle again)
        if how == "ctrl-c":
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        started = time.monotonic()
        assert proc.wait(timeout=90) == 0, service.output()
        # Well within the 30 s that judge serve gives each child before killing it.
        assert time.monotonic() - started < 20, service.output()
        output = log.read_text()
        assert "Traceback" not in output, output
        assert "restarting" not in output, output
        stopping = [line for line in output.splitlines() if "stopping the embedded" in line]
        assert [line.rsplit(" ", 1)[1] for line in stopping] == ["worker", "trainer"], output
        assert "warm shut down requested" in output  # the worker stopped itself, its Redis still up
        assert not [pid for pid in children if _alive(pid)]  # stopped before their parent exited
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
