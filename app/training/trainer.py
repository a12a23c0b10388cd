"""``judge trainer``: take SFT/DPO requests from the trainer queue in Redis, one at a time, and run
each in a child process (:func:`~app.training.runner.run_in_subprocess`, so JUDGE_TRAIN_DEVICES,
JUDGE_TRAIN_NICE and the launcher apply here, never in a process that serves judgments).

The requester finds the answer on its reply list (:mod:`app.training.protocol`). A request stops
when its requester sets its cancel key or stops refreshing its ``waiting`` heartbeat (a worker that
died); a trainer asked to stop (SIGTERM, SIGINT) ends its training child and answers "shutdown", so
the job is handed back rather than failed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from types import FrameType

from pydantic import ValidationError
from redis import Redis
from redis.exceptions import RedisError

from app.core.config import Settings
from app.training.protocol import REPLY_TTL_S, TrainerKeys, TrainReply, TrainRequest
from app.training.runner import (
    DEFAULT_GRACE_S,
    TrainingCancelled,
    TrainingFailed,
    TrainLaunch,
    run_in_subprocess,
    terminate_all,
)
from app.training.yielding import ServingGate, yields

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.25


class _Current:
    """The request being trained, the event that stops its child, and why it was stopped."""

    def __init__(self, request: TrainRequest) -> None:
        self.request = request
        self.cancel = threading.Event()
        self.why = ""


class Trainer:
    """Serves one trainer queue: one training at a time, in a child process.

    ``command`` replaces the training child's command line (tests; see :func:`run_in_subprocess`).
    """

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        trainer_id: str | None = None,
        command: Sequence[str] | None = None,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        self.redis = redis
        self.keys = TrainerKeys(settings.trainer_queue)
        self.launch = TrainLaunch.from_settings(settings)
        # Serving first: the training pauses while a worker on this host serves (app/training/yielding.py).
        self.yield_to = ServingGate(redis) if yields(settings.train_yield_to_serving) else None
        self.heartbeat_ms = int(settings.trainer_heartbeat_seconds * 1000)
        self.trainer_id = trainer_id or f"{socket.gethostname()}:{os.getpid()}"
        self.command = command
        self.grace_s = grace_s
        self.stopping = threading.Event()
        self._done = threading.Event()
        # Reentrant: stop() runs in a signal handler, on the thread that may hold it.
        self._lock = threading.RLock()
        self._current: _Current | None = None

    def serve(self) -> None:
        """Take requests until :meth:`stop`. Call it from a thread that lives until it returns (the
        training child dies with the thread that started it)."""
        self._beat(None)
        watcher = threading.Thread(target=self._watch, name="trainer-watch", daemon=True)
        watcher.start()
        log.info("trainer %s serving %s (devices: %s)", self.trainer_id, self.keys.queue, self.launch.devices)
        try:
            while not self.stopping.is_set():
                item = self.redis.brpop([self.keys.queue], timeout=1)
                if item is not None:
                    self._handle(item[1])
        finally:
            self._done.set()
            watcher.join(timeout=5)
            log.info("trainer %s stopped", self.trainer_id)

    def stop(self) -> None:
        """Stop serving: a running training is ended (SIGTERM, then SIGKILL) and answered "shutdown".
        Safe from a signal handler."""
        self.stopping.set()
        with self._lock:
            current = self._current
        if current is not None and not current.cancel.is_set():
            current.why = "the trainer is stopping"
            current.cancel.set()

    def _handle(self, raw: bytes | str) -> None:
        try:
            request = TrainRequest.model_validate_json(raw)
        except ValidationError as exc:
            log.error("invalid training request: %s", exc)
            request_id = _request_id_of(raw)
            if request_id is not None:
                self._answer(request_id, "failed", message=f"invalid training request: {exc}")
            return
        rid = request.request_id
        if not self.redis.exists(self.keys.waiting(rid)):
            log.warning("dropping training request %s (job %s): its requester is gone", rid, request.job_id)
            return
        if self.stopping.is_set():
            self._answer(rid, "shutdown", message="the trainer is stopping")
            return
        if self.redis.exists(self.keys.cancel(rid)):
            self._answer(rid, "cancelled", message=f"{request.kind} training cancelled before it started")
            return
        current = _Current(request)
        with self._lock:
            self._current = current
        self._beat(current)
        log.info("training %s for job %s (request %s)", request.kind, request.job_id, rid)
        try:
            result = run_in_subprocess(
                request.kind,
                request.training_spec(),
                request.timeout_s,
                current.cancel,
                launch=self.launch,
                grace_s=self.grace_s,
                command=self.command,
                yield_to=self.yield_to,
            )
        except TrainingCancelled as exc:
            status = "shutdown" if exc.reason == "shutdown" or self.stopping.is_set() else "cancelled"
            why = f" ({current.why})" if current.why else ""
            self._answer(rid, status, message=f"{exc}{why}", output_tail=exc.output_tail)
        except TrainingFailed as exc:
            self._answer(rid, "failed", message=str(exc), output_tail=exc.output_tail)
        except Exception as exc:  # the child could not start (a bad launcher config, no disk space)
            log.exception("training request %s failed", rid)
            message = f"{request.kind} training failed: {type(exc).__name__}: {exc}"
            self._answer(rid, "failed", message=message)
        else:
            self._answer(rid, "succeeded", result=asdict(result))
        finally:
            with self._lock:
                self._current = None

    def _answer(
        self,
        request_id: str,
        status: str,
        *,
        result: dict[str, object] | None = None,
        message: str = "",
        output_tail: str = "",
    ) -> None:
        reply = TrainReply.model_validate(
            {
                "request_id": request_id,
                "status": status,
                "result": result,
                "message": message,
                "output_tail": output_tail,
            }
        )
        log.info("training request %s: %s %s", request_id, status, message)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(self.keys.reply(request_id), reply.model_dump_json())
        pipe.expire(self.keys.reply(request_id), REPLY_TTL_S)
        # After the push, in the same transaction: a requester that sees the hold gone finds the reply.
        pipe.delete(self.keys.running(request_id), self.keys.cancel(request_id))
        pipe.execute()

    def _beat(self, current: _Current | None) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.alive, self.trainer_id, px=self.heartbeat_ms)
        if current is not None:
            pipe.set(self.keys.running(current.request.request_id), self.trainer_id, px=self.heartbeat_ms)
        pipe.execute()

    def _watch(self) -> None:
        """Refresh the heartbeats (several times per TTL) and stop a training whose requester cancelled
        it or went away."""
        beat_every = self.heartbeat_ms / 1000 / 4
        last_beat = time.monotonic()
        while not self._done.wait(WATCH_INTERVAL_S):
            with self._lock:
                current = self._current
            try:
                if time.monotonic() - last_beat >= beat_every:
                    self._beat(current)
                    last_beat = time.monotonic()
                if current is None or current.cancel.is_set():
                    continue
                rid = current.request.request_id
                if self.redis.exists(self.keys.cancel(rid)):
                    current.why = "cancelled by its requester"
                elif not self.redis.exists(self.keys.waiting(rid)):
                    current.why = "its requester is gone"
                else:
                    continue
                log.warning("stopping training request %s: %s", rid, current.why)
                current.cancel.set()
            except RedisError:
                log.warning("trainer heartbeat: Redis unavailable", exc_info=True)


def serve_until_signalled(trainer: Trainer) -> None:
    """Serve on the main thread until SIGTERM or SIGINT, which stop the trainer; its training child is
    ended and answered "shutdown" before this returns."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("trainer: signal %d, stopping", signum)
        trainer.stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        trainer.serve()
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        terminate_all()


def run_trainer(settings: Settings) -> None:
    """``judge trainer``: serve the trainer queue (``settings.trainer_queue``) until stopped."""
    if not settings.redis_url:
        raise RuntimeError("the trainer needs REDIS_URL (embedded mode passes its own)")
    redis = Redis.from_url(settings.redis_url)
    try:
        serve_until_signalled(Trainer(redis, settings))
    finally:
        redis.close()


def _request_id_of(raw: bytes | str) -> str | None:
    """The request id of a request that failed validation, if it has a usable one."""
    try:
        value = json.loads(raw).get("request_id")
        TrainReply(request_id=value, status="failed")
    except (ValueError, AttributeError, ValidationError):
        return None
    return str(value)
