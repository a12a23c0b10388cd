"""Worker-side figures, added to Redis so that every API process can expose them (workers may run on
other machines). One pipeline per engine call or judged batch; a metrics failure is logged and never
fails the work it measures."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from redis import Redis
from redis.exceptions import RedisError

from app.metrics import families as fam

log = logging.getLogger(__name__)


class WorkerMetrics:
    """``label_of`` turns a model's name into its ``model`` label (see :mod:`app.metrics.model_labels`)."""

    def __init__(
        self,
        redis: Redis,
        label_of: Callable[[str], str] = str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.label_of = label_of
        self.clock = clock

    def record_engine_call(self, model: str, operation: str, prompts: int, seconds: float) -> None:
        """One engine call: its batch size and wall time."""
        labels = {"model": self.label_of(model), "operation": operation}
        self._add(
            fam.merge(
                fam.increments(fam.BATCH_SIZE, labels, prompts),
                fam.increments(fam.MODEL_LATENCY, labels, seconds),
            )
        )

    def record_judgments(
        self, model: str, mode: str, judgments: int, parse_errors: int, items: Mapping[str, int]
    ) -> None:
        """A judged batch of one mode: judge outputs, how many were unparseable, items by status."""
        labels = {"model": self.label_of(model), "mode": mode}
        self._add(
            fam.merge(
                fam.increments(fam.JUDGMENTS, labels, judgments),
                fam.increments(fam.PARSE_ERRORS, labels, parse_errors),
                *(fam.increments(fam.ITEMS, {**labels, "status": s}, n) for s, n in items.items()),
            ),
            recent_judgments=judgments,
        )

    def _add(self, fields: Mapping[str, float], recent_judgments: int = 0) -> None:
        try:
            pipe = self.redis.pipeline(transaction=True)
            for key, value in fields.items():
                # A field always gets one type: counts are ints, latency sums floats (HINCRBY fails
                # on a field that HINCRBYFLOAT wrote a fraction to).
                if isinstance(value, int):
                    pipe.hincrby(fam.WORKER_HASH, key, value)
                else:
                    pipe.hincrbyfloat(fam.WORKER_HASH, key, value)
            if recent_judgments:
                slot_key = fam.RECENT_KEY_PREFIX + str(fam.slot_of(self.clock()))
                pipe.incrby(slot_key, recent_judgments)
                pipe.expire(slot_key, 2 * fam.WINDOW_SECONDS)
            pipe.execute()
        except RedisError as exc:
            log.warning("could not record worker metrics: %s", exc)
