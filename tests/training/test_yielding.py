"""Serving first: the worker's beacon key, the trainer's gate, and a real training process paused while
serving runs (SIGSTOP), resumed after (SIGCONT), and still stopped within seconds by a cancel."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from redis import Redis

from app.training.runner import TrainingCancelled, TrainLaunch, run_in_subprocess
from app.training.specs import SFTSpec
from app.training.yielding import ServingBeacon, ServingGate, serving_key, yields
from tests.training.test_lifecycle import alive, wait_gone

SPEC = SFTSpec(base_path="unused", output_path="unused", examples=[{"prompt": "p", "completion": "c"}])
# A stand-in training that writes a line every 20 ms for as long as it runs.
TICKER = "import sys, time\nwhile True:\n    open(sys.argv[1], 'a').write('x\\n')\n    time.sleep(0.02)\n"


def test_auto_yields_only_on_hosts_without_a_gpu() -> None:
    assert yields("auto", gpu_present=False)
    assert not yields("auto", gpu_present=True)
    assert yields("always", gpu_present=True)
    assert not yields("never", gpu_present=False)


def test_the_beacon_holds_the_key_while_busy_and_drops_it_after_lingering(redis: Redis) -> None:
    busy = [True]
    key = serving_key("test-host")
    beacon = ServingBeacon(redis, lambda: busy[0], key=key, ttl_s=3.0, linger_s=0.5)
    gate = ServingGate(redis, key)
    assert not gate()
    beacon.tick(100.0)
    assert gate()
    assert 0 < redis.pttl(key) <= 3000
    busy[0] = False
    beacon.tick(100.3)  # idle for less than linger_s: still set
    assert gate()
    beacon.tick(100.6)
    assert not gate()
    busy[0] = True
    beacon.tick(101.0)
    assert gate()
    beacon.stop()  # a stopping worker leaves no key behind
    assert not gate()


def test_the_beacon_refreshes_the_key_while_serving_goes_on(redis: Redis) -> None:
    key = serving_key("test-host-2")
    beacon = ServingBeacon(redis, lambda: True, key=key, ttl_s=3.0)
    beacon.tick(0.0)
    redis.pexpire(key, 10)  # as if time had passed
    time.sleep(0.05)
    beacon.tick(1.1)  # a third of the TTL later: written again
    assert redis.exists(key)
    beacon.stop()


def test_the_gate_says_no_when_redis_is_unreachable() -> None:
    assert not ServingGate(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))()


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process states from /proc")
def test_a_training_pauses_while_serving_runs_resumes_after_and_a_cancel_still_ends_it(
    tmp_path: Path,
) -> None:
    out = tmp_path / "ticks"
    serving = threading.Event()
    cancel = threading.Event()
    errors: list[BaseException] = []
    pids: list[int] = []

    def train() -> None:
        try:
            run_in_subprocess(
                "sft",
                SPEC,
                300,
                cancel,
                launch=TrainLaunch(nice=0),
                command=[sys.executable, "-c", TICKER, str(out)],
                yield_to=serving.is_set,
            )
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    wait_until(lambda: lines(out) > 3)
    pid = int(Path(f"/proc/{thread.native_id}/task/{thread.native_id}/children").read_text().split()[0])
    pids.append(pid)

    serving.set()
    wait_until(lambda: process_state(pid) == "T", timeout=2)  # stopped within a poll or two
    paused_at = lines(out)
    time.sleep(0.4)
    assert lines(out) == paused_at  # no progress while serving

    serving.clear()
    wait_until(lambda: lines(out) > paused_at + 3, timeout=2)  # resumed

    serving.set()
    wait_until(lambda: process_state(pid) == "T", timeout=2)
    started = time.monotonic()
    cancel.set()  # a paused training still ends on a cancel (SIGTERM is followed by SIGCONT)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 4
    assert isinstance(errors[0], TrainingCancelled) and errors[0].reason == "cancelled"
    wait_gone(pids, timeout=2)
    assert not alive(pid)
