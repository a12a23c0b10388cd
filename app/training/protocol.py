"""What a worker and a `judge trainer` process exchange through Redis, and where.

A worker pushes a :class:`TrainRequest` on the trainer queue and waits for one :class:`TrainReply` on
its request's reply list. While a request is handled, three heartbeats with a TTL say who is still
there: the trainer's presence, the trainer's hold on the request, and the waiting worker. Both sides
validate what they read: a message is a pydantic model, never a loose dict.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.training.specs import DPOSpec, SFTSpec, TrainingKind, TrainResult, result_from_json, spec_from_json

ReplyStatus = Literal["succeeded", "failed", "cancelled", "shutdown"]
# How long an answer, and a cancel, stay in Redis for a requester that is slow to read them.
REPLY_TTL_S = 24 * 3600


class TrainRequest(BaseModel):
    """One SFT or DPO run for a trainer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"
    )
    job_id: str | None = Field(default=None, max_length=64, description="The job that asks, for the logs.")
    kind: TrainingKind
    spec: dict[str, Any] = Field(description="dataclasses.asdict of the SFTSpec or DPOSpec.")
    timeout_s: float = Field(gt=0, description="The run's time limit, once it has started.")

    @model_validator(mode="after")
    def _spec_is_valid(self) -> Self:
        self.training_spec()  # raises ValueError, which pydantic reports as a validation error
        return self

    @classmethod
    def of(
        cls, kind: TrainingKind, spec: SFTSpec | DPOSpec, timeout_s: float, job_id: str | None = None
    ) -> TrainRequest:
        return cls(kind=kind, spec=asdict(spec), timeout_s=timeout_s, job_id=job_id)

    def training_spec(self) -> SFTSpec | DPOSpec:
        return spec_from_json(self.kind, self.spec)


class TrainReply(BaseModel):
    """How a request ended: ``result`` (asdict of TrainResult) when it succeeded; else ``message`` and
    the training's last output lines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    status: ReplyStatus
    result: dict[str, Any] | None = None
    message: str = ""
    output_tail: str = ""

    @model_validator(mode="after")
    def _result_iff_succeeded(self) -> Self:
        if (self.status == "succeeded") != (self.result is not None):
            raise ValueError("a reply carries a result exactly when it succeeded")
        if self.result is not None:
            result_from_json(self.result)
        return self

    def train_result(self) -> TrainResult:
        assert self.result is not None
        return result_from_json(self.result)


class TrainerKeys:
    """The Redis keys of one trainer queue (``prefix``: the ``trainer_queue`` setting)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue = f"{prefix}:queue"  # list of TrainRequest JSON: LPUSH by workers, BRPOP by trainers
        # Refreshed (TTL) by every trainer serving the queue, whether or not it trains: "some trainer runs".
        self.alive = f"{prefix}:alive"

    def running(self, request_id: str) -> str:
        """The trainer's hold on a request it took (TTL), from taking it until its reply is pushed."""
        return f"{self.prefix}:running:{request_id}"

    def waiting(self, request_id: str) -> str:
        """The requester's presence (TTL): without it a trainer drops or stops the request."""
        return f"{self.prefix}:waiting:{request_id}"

    def cancel(self, request_id: str) -> str:
        """Set by the requester to stop the request: "cancelled" or "shutdown"."""
        return f"{self.prefix}:cancel:{request_id}"

    def reply(self, request_id: str) -> str:
        """A list that receives the one TrainReply (the push wakes the requester's BLPOP)."""
        return f"{self.prefix}:reply:{request_id}"
