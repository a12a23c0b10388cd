"""Serving first: a training on the host of a serving worker pauses while that worker has judgments
to run, and goes on in the gaps.

On a machine where training and serving share the CPU (or one GPU), SCHED_IDLE is not enough: a
training's threads still take a core whenever serving leaves one idle for an instant, and the cache
and memory traffic they bring make each judgment several times slower (a waiting client's one-item
judgment went from about 1 s to 2-9 s while an SFT ran beside it). So:

- the worker (:class:`ServingBeacon`) keeps a Redis key, named after its host, alive while its
  scheduler holds a client's or a judging job's request (long jobs' own calls do not count), and
  drops it ``linger_s`` after the last one is done;
- the trainer (:class:`ServingGate`, polled by :func:`app.training.runner.run_in_subprocess`) stops the
  training's process group (SIGSTOP) while the key of its host exists and resumes it (SIGCONT) after.
  A paused training keeps its memory; time paused does not count against its timeout. A worker that
  dies leaves the key to expire (``ttl_s``), so a training is never paused for good.

Where training and serving have devices of their own (``JUDGE_TRAIN_DEVICES``, GPUs), pausing only
slows training: ``JUDGE_TRAIN_YIELD_TO_SERVING=auto`` (the default) pauses only on hosts without an
NVIDIA device; ``always`` and ``never`` decide outright.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from redis import Redis

log = logging.getLogger(__name__)

YieldMode = Literal["auto", "always", "never"]

KEY_PREFIX = "judge:serving-busy:"
# A GPU driver's control node: its presence means this host has NVIDIA devices (see ``auto``).
_NVIDIA_NODE = Path("/dev/nvidiactl")


def serving_key(host: str | None = None) -> str:
    """The Redis key that says a worker on ``host`` (this one by default) is serving now."""
    return KEY_PREFIX + (host or socket.gethostname())


def yields(mode: YieldMode, gpu_present: bool | None = None) -> bool:
    """Whether trainings on this host pause while serving runs (``auto``: only without an NVIDIA
    device, where training and serving share the CPU)."""
    if mode != "auto":
        return mode == "always"
    return not (_NVIDIA_NODE.exists() if gpu_present is None else gpu_present)


class ServingBeacon:
    """The worker's side: a thread that keeps :func:`serving_key` set while ``busy()`` says the
    scheduler holds serving work, and deletes it once it has said no for ``linger_s``."""

    def __init__(
        self,
        redis: Redis,
        busy: Callable[[], bool],
        *,
        key: str | None = None,
        poll_s: float = 0.05,
        ttl_s: float = 3.0,
        linger_s: float = 0.5,
    ) -> None:
        self.redis = redis
        self.busy = busy
        self.key = key or serving_key()
        self.poll_s = poll_s
        self.ttl_ms = int(ttl_s * 1000)
        self.linger_s = linger_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._set_at: float | None = None  # when the key was last written (None: it is not set)
        self._busy_at = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serving-beacon", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._clear()

    def tick(self, now: float) -> None:
        """One look at the scheduler: set, refresh or drop the key."""
        if self.busy():
            self._busy_at = now
            if self._set_at is None or now - self._set_at >= self.ttl_ms / 3000:
                self.redis.set(self.key, "1", px=self.ttl_ms)
                self._set_at = now
        elif self._set_at is not None and now - self._busy_at >= self.linger_s:
            self._clear()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.tick(time.monotonic())
            except Exception:  # noqa: BLE001 - Redis away: trainings run unpaused meanwhile
                log.debug("serving beacon: could not reach Redis", exc_info=True)

    def _clear(self) -> None:
        if self._set_at is None:
            return
        try:
            self.redis.delete(self.key)
        except Exception:  # noqa: BLE001 - the key expires on its own
            log.debug("serving beacon: could not delete %s", self.key, exc_info=True)
        self._set_at = None


class ServingGate:
    """The trainer's side: whether a worker on this host is serving now (Redis down: no)."""

    def __init__(self, redis: Redis, key: str | None = None) -> None:
        self.redis = redis
        self.key = key or serving_key()

    def __call__(self) -> bool:
        try:
            return bool(self.redis.exists(self.key))
        except Exception:  # noqa: BLE001 - never pause a training on a broken connection
            return False
