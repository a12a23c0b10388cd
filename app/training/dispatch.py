"""Where a worker's SFT/DPO runs: :func:`train` sends it to a `judge trainer` process through Redis
(``JUDGE_TRAINER=queue``) or runs it as a child of this process (``local``), with the same result and
the same exceptions as :func:`~app.training.runner.run_in_subprocess`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal

from pydantic import ValidationError
from redis import Redis

from app.core.config import Settings
from app.training.protocol import REPLY_TTL_S, TrainerKeys, TrainReply, TrainRequest
from app.training.runner import (
    DEFAULT_GRACE_S,
    TrainingCancelled,
    TrainingFailed,
    TrainLaunch,
    run_in_subprocess,
)
from app.training.specs import DPOSpec, SFTSpec, TrainResult, spec_to_json
from app.training.yielding import ServingGate, yields

log = logging.getLogger(__name__)

POLL_S = 0.5


class TrainerLost(RuntimeError):
    """No trainer answered: the one that took the request stopped refreshing its heartbeat (killed,
    or its machine went away), or no trainer ran for ``trainer_absent_seconds`` while the request
    waited. Like :class:`TrainingCancelled`, deliberately not a :class:`TrainingFailed`: it says
    nothing about the training, so a job treats it as a retryable error (re-queued, bounded by
    JUDGE_JOB_MAX_ATTEMPTS)."""


def train(
    kind: str,
    spec: SFTSpec | DPOSpec,
    timeout_s: float,
    cancel: threading.Event | None = None,
    *,
    settings: Settings,
    redis: Redis | None = None,
    shutdown: threading.Event | None = None,
    job_id: str | None = None,
) -> TrainResult:
    """Run a ``kind`` ("sft" or "dpo") training of ``spec`` where ``settings.trainer`` says and return
    its result; blocks until it ends.

    ``cancel`` stops it (the training's processes get SIGTERM, then SIGKILL) and raises
    TrainingCancelled("cancelled"); ``shutdown`` (the worker is stopping) does the same with reason
    "shutdown", as does a trainer that stops. TrainingFailed: the training failed or ran past
    ``timeout_s`` (counted from its start; time waiting for a busy trainer does not count).
    TrainerLost: the trainer died, or none runs (queue mode only). ``redis`` is required in queue mode.
    """
    if settings.trainer == "local":
        gate = ServingGate(redis) if redis is not None and yields(settings.train_yield_to_serving) else None
        launch = TrainLaunch.from_settings(settings)
        return run_in_subprocess(kind, spec, timeout_s, cancel, launch=launch, yield_to=gate)
    if redis is None:
        raise ValueError("JUDGE_TRAINER=queue needs a Redis connection")
    client = TrainerClient(redis, settings)
    return client.train(kind, spec, timeout_s, cancel, shutdown=shutdown, job_id=job_id)


class TrainerClient:
    """The requester's side of the trainer queue (see :mod:`app.training.protocol`)."""

    def __init__(
        self, redis: Redis, settings: Settings, *, poll_s: float = POLL_S, grace_s: float = DEFAULT_GRACE_S
    ) -> None:
        self.redis = redis
        self.keys = TrainerKeys(settings.trainer_queue)
        self.heartbeat_s = settings.trainer_heartbeat_seconds
        self.absent_s = settings.trainer_absent_seconds
        self.poll_s = poll_s
        self.grace_s = grace_s

    def train(
        self,
        kind: str,
        spec: SFTSpec | DPOSpec,
        timeout_s: float,
        cancel: threading.Event | None = None,
        *,
        shutdown: threading.Event | None = None,
        job_id: str | None = None,
    ) -> TrainResult:
        """See :func:`train`."""
        request = TrainRequest.model_validate(
            {"kind": kind, "spec": spec_to_json(spec), "timeout_s": timeout_s, "job_id": job_id}
        )
        rid, raw = request.request_id, request.model_dump_json()
        keys, heartbeat_ms = self.keys, int(self.heartbeat_s * 1000)
        self.redis.set(keys.waiting(rid), job_id or "", px=heartbeat_ms)
        self.redis.lpush(keys.queue, raw)
        log.info("queued %s training %s for job %s on %s", kind, rid, job_id, keys.queue)
        answered = False
        stopping: Literal["cancelled", "shutdown"] | None = None
        stop_deadline = 0.0
        last_seen = time.monotonic()  # when the request was last seen queued or held by a trainer
        absent_since: float | None = None  # since when no trainer has run, while it was queued
        started: float | None = None  # when a trainer was first seen holding it
        try:
            while True:
                reply = self._reply(rid, self.poll_s)
                if reply is not None:
                    answered = True
                    return _outcome(reply, kind, stopping)
                self.redis.set(keys.waiting(rid), job_id or "", px=heartbeat_ms)
                now = time.monotonic()
                if stopping is None:
                    stopping = _stop_reason(cancel, shutdown)
                    if stopping is not None:
                        self.redis.set(keys.cancel(rid), stopping, ex=REPLY_TTL_S)
                        if self.redis.lrem(keys.queue, 1, raw):
                            raise TrainingCancelled(stopping, f"{kind} training {stopping} before it started")
                        # Wait for the trainer to confirm that its child is gone, within bounds.
                        stop_deadline = now + 2 * self.grace_s + self.heartbeat_s
                elif now > stop_deadline:
                    message = f"{kind} training {stopping} (the trainer did not confirm)"
                    raise TrainingCancelled(stopping, message)
                if self.redis.exists(keys.running(rid)):
                    last_seen, absent_since = now, None
                    started = started if started is not None else now
                    if now - started > timeout_s + 2 * self.grace_s + 2 * self.heartbeat_s:
                        raise TrainingFailed(f"{kind} training timed out after {timeout_s:g}s (no answer)")
                    continue
                if self.redis.lpos(keys.queue, raw) is not None:
                    last_seen = now
                    if self.redis.exists(keys.alive):
                        absent_since = None
                    elif absent_since is None:
                        absent_since = now
                    elif now - absent_since > self.absent_s:
                        raise TrainerLost(
                            f"no trainer has served {keys.queue} for {self.absent_s:g}s: start `judge "
                            "trainer` (or set JUDGE_TRAINER=local)"
                        )
                    continue
                # Neither queued nor held: a trainer is between taking it and holding it, or died.
                reply = self._reply(rid, None)
                if reply is not None:
                    answered = True
                    return _outcome(reply, kind, stopping)
                if now - last_seen > self.heartbeat_s:
                    if stopping is not None:
                        raise TrainingCancelled(stopping, f"{kind} training {stopping} (the trainer is gone)")
                    raise TrainerLost(
                        f"the trainer running {kind} training {rid} stopped answering "
                        f"(no heartbeat for {self.heartbeat_s:g}s)"
                    )
        finally:
            if not answered:
                # Whatever the trainer does with it later, the request is abandoned: stop or drop it.
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(keys.cancel(rid), stopping or "cancelled", ex=REPLY_TTL_S)
                pipe.lrem(keys.queue, 1, raw)
                pipe.execute()
            self.redis.delete(keys.waiting(rid), keys.reply(rid))

    def _reply(self, rid: str, timeout_s: float | None) -> TrainReply | None:
        key = self.keys.reply(rid)
        if timeout_s is None:
            raw = self.redis.lpop(key)
        else:
            item = self.redis.blpop([key], timeout=timeout_s)
            raw = item[1] if item is not None else None
        if raw is None:
            return None
        try:
            reply = TrainReply.model_validate_json(raw)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise TrainingFailed(f"the trainer sent an invalid reply: {exc}") from exc
        if reply.request_id != rid:
            raise TrainingFailed(f"the trainer answered request {reply.request_id} on {rid}'s reply list")
        return reply


def _stop_reason(
    cancel: threading.Event | None, shutdown: threading.Event | None
) -> Literal["cancelled", "shutdown"] | None:
    if cancel is not None and cancel.is_set():
        return "cancelled"
    if shutdown is not None and shutdown.is_set():
        return "shutdown"
    return None


def _outcome(reply: TrainReply, kind: str, stopping: Literal["cancelled", "shutdown"] | None) -> TrainResult:
    if reply.status == "succeeded":
        return reply.train_result()
    if reply.status == "failed":
        raise TrainingFailed(reply.message or f"{kind} training failed", reply.output_tail)
    # The trainer stopping is a shutdown whatever we asked; otherwise the reason we gave.
    reason = "shutdown" if reply.status == "shutdown" else (stopping or "cancelled")
    raise TrainingCancelled(reason, reply.message or f"{kind} training stopped ({reason})", reply.output_tail)
