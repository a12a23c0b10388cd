"""Response schemas of a job's webhook deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class DeliveryAttemptOut(BaseModel):
    attempt: int = Field(ge=1, description="Which attempt, from 1 (the `X-Judge-Delivery-Attempt` header).")
    attempted_at: datetime = Field(description="When the POST was sent.")
    duration_ms: float = Field(ge=0, description="How long the call took, connecting included.")
    outcome: Literal["delivered", "retrying", "failed"] = Field(
        description="`delivered`: the receiver answered 2xx; `retrying`: another attempt follows at "
        "`next_attempt_at`; `failed`: the last attempt (`JUDGE_WEBHOOK_MAX_ATTEMPTS`), given up."
    )
    status_code: int | None = Field(
        default=None, description="The receiver's HTTP status; null when no answer came (see `error`)."
    )
    error: str | None = Field(
        default=None,
        description="Why the attempt did not deliver: the status and the start of the answer, a connection "
        "error or timeout, or a refused address.",
    )
    next_attempt_at: datetime | None = Field(
        default=None, description="`retrying`: when the next attempt is due."
    )


class DeliveryOut(BaseModel):
    event_id: uuid.UUID = Field(description="The event's id, `X-Judge-Event-Id` (the same on every retry).")
    url: str = Field(description="The job's `callback_url`.")
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`pending`: due (again) at `next_attempt_at`; `delivered`; `failed`: given up."
    )
    attempts: list[DeliveryAttemptOut] = Field(description="Every attempt made, first first.")
    next_attempt_at: datetime | None = Field(
        default=None, description="`pending`: when the next attempt is due (or held by a deliverer)."
    )
    delivered_at: datetime | None = None
    created_at: datetime = Field(description="When the job ended and its callback was recorded.")


class DeliveryList(BaseModel):
    job_id: uuid.UUID
    deliveries: list[DeliveryOut] = Field(
        description="The job's callback (at most one: a job ends once); empty while the job runs, and for "
        "a job without `callback_url`."
    )
