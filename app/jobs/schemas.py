"""Response schemas of job resources, shared by every job kind."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from app.jobs import kinds

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# A job's kind: one of those registered in app.kinds (this layer knows none by name).
JobKind = str


def _registered_kinds(schema: dict[str, Any]) -> None:
    """The JSON schema of a job's kind lists the registered kinds (read when the schema is built)."""
    schema["enum"] = list(kinds.names())


METADATA_MAX_KEYS = 32
METADATA_KEY_MAX_CHARS = 64
METADATA_VALUE_MAX_CHARS = 512
METADATA_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$"
CALLBACK_URL_MAX_CHARS = 2048
_METADATA_KEY = re.compile(METADATA_KEY_PATTERN)


def metadata_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a metadata key, or None."""
    if not key or len(key) > METADATA_KEY_MAX_CHARS:
        return f"metadata key {key[:80]!r} must be 1 to {METADATA_KEY_MAX_CHARS} characters long"
    if not _METADATA_KEY.match(key):
        return (
            f"metadata key {key!r} may hold only letters, digits and `_ . - /`, starting with a letter or "
            "digit"
        )
    return None


def _invalid(message: str, field: str | None = None) -> PydanticCustomError:
    # The error handler appends ``field`` to the location: `metadata.<key>`.
    return PydanticCustomError("invalid_request", message, {"field": field} if field else None)


class JobOptionsIn(BaseModel):
    """Options every request that creates a job accepts (judging, prompt optimization, self-reward)."""

    OPTION_FIELDS: ClassVar[frozenset[str]] = frozenset({"metadata", "callback_url"})

    metadata: dict[str, str] | None = Field(
        default=None,
        description=f"Your own labels for the job (at most {METADATA_MAX_KEYS} keys of at most "
        f"{METADATA_KEY_MAX_CHARS} characters — letters, digits, `_ . - /` — with string values of at most "
        f"{METADATA_VALUE_MAX_CHARS}); returned on the job and in its webhook, and a filter of "
        "`GET /v1/jobs` (`?metadata=key:value`).",
        json_schema_extra={
            "maxProperties": METADATA_MAX_KEYS,
            "propertyNames": {"pattern": METADATA_KEY_PATTERN, "maxLength": METADATA_KEY_MAX_CHARS},
            "additionalProperties": {"type": "string", "maxLength": METADATA_VALUE_MAX_CHARS},
        },
    )
    callback_url: str | None = Field(
        default=None,
        max_length=CALLBACK_URL_MAX_CHARS,
        description="An http(s) URL called once when the job ends (succeeded, failed or cancelled), with a "
        "JSON body signed in `X-Judge-Signature` (see the README, Webhooks); retried with backoff until it "
        "answers 2xx.",
        json_schema_extra={"format": "uri"},
    )

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > METADATA_MAX_KEYS:
            raise _invalid(f"metadata has {len(value)} keys; at most {METADATA_MAX_KEYS}")
        for key, item in value.items():
            problem = metadata_key_problem(key)
            if problem:
                raise _invalid(problem)
            if len(item) > METADATA_VALUE_MAX_CHARS:
                raise _invalid(
                    f"value is {len(item)} characters long; at most {METADATA_VALUE_MAX_CHARS}", key
                )
        return value

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(ch.isspace() or ord(ch) < 32 for ch in value):
            raise _invalid("callback_url must not contain spaces or control characters")
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises on a malformed port
        except ValueError as exc:
            raise _invalid(f"callback_url is not a valid URL: {exc}") from exc
        if parts.scheme not in ("http", "https"):
            raise _invalid("callback_url must be an http:// or https:// URL")
        if not parts.hostname:
            raise _invalid("callback_url has no host")
        return value


class Progress(BaseModel):
    done: int = Field(ge=0, description="Units finished (judging: items).")
    total: int = Field(ge=0, description="Units in the job.")
    failed: int = Field(
        default=0,
        ge=0,
        description="Judging: items (counted in `done`) that ended in error, e.g. a reply with no "
        "verdict; each has its cause in `error`. List them with `GET /v1/jobs/{id}/results?status=error`.",
    )


class OrderResult(BaseModel):
    order: Literal["AB", "BA", "single"] = Field(
        description="`AB`: answer_a shown first; `BA`: answer_b shown first; `single`: single-answer grading."
    )
    sample: int = Field(
        default=0, ge=0, description="Which of the order's samples this is, from 0 (`samples` above 1)."
    )
    raw: str = Field(description="The judge model's raw output for this order.")
    verdict: Literal["A", "B", "tie"] | None = Field(
        default=None, description="This order's verdict, in the caller's labels (A is always answer_a)."
    )
    score: float | None = Field(
        default=None,
        description="This order's score (single grading); with `verdict_mode: logprobs`, its most likely "
        "score.",
    )
    error: str | None = Field(default=None, description="Why this order's output could not be parsed.")
    probabilities: dict[str, float] | None = Field(
        default=None,
        description="`verdict_mode: logprobs` only: this order's label probabilities in the caller's "
        "labels (`A`, `B`, `tie`; A is always answer_a), or each score's probability (keys are the "
        "scores, e.g. `7`). `raw` shows the same distribution in the judge's own labels.",
    )
    cached: bool = Field(
        default=False,
        description="Served from the verdict cache (see the judging requests' `cache`): no engine call was "
        "made; `raw` and the token counts are those of the call that was cached, `latency_ms` is 0.",
    )
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    latency_ms: float = Field(
        default=0.0,
        ge=0,
        description="The call's own time in the engine, in milliseconds (its wait before is `queue_ms`).",
    )
    queue_ms: float = Field(
        default=0.0,
        ge=0,
        description="How long the call waited in the model's scheduler queue before the engine started "
        "on it, in milliseconds (0 when unknown, e.g. for calls judged before it was recorded).",
    )


class JudgeResult(BaseModel):
    model: str = Field(description="The judge model.")
    weight: float = Field(description="Its weight (`aggregate: weighted`; else 1).")
    job_id: uuid.UUID = Field(description="The jury member job that ran this judge's calls.")
    status: Literal["pending", "ok", "error"] = Field(description="This judge's status for the item.")
    verdict: Literal["A", "B", "tie"] | None = Field(default=None, description="This judge's verdict.")
    score: float | None = Field(default=None, description="This judge's score.")
    consistent: bool | None = Field(default=None, description="Whether this judge's two orders agreed.")
    error: str | None = Field(default=None, description="Why this judge's item failed.")
    cached: bool = Field(default=False, description="This judge's calls all came from the verdict cache.")
    orders: list[OrderResult] = Field(
        default_factory=list, description="This judge's calls, with raw output."
    )


class ItemRubric(BaseModel):
    criteria: str = Field(description="What the answer was judged on.")
    descriptions: dict[str, str] = Field(description="What each score means, keyed by the score.")


class ItemResult(BaseModel):
    index: int = Field(ge=0, description="Position of the item in the request, from 0.")
    id: str | None = Field(default=None, description="The id you gave the item, if any.")
    status: Literal["pending", "ok", "error"] = Field(description="`pending` until the item is judged.")
    verdict: Literal["A", "B", "tie"] | None = Field(
        default=None,
        description="Pairwise verdict; with `verdict_mode: logprobs`, the most likely label of "
        "`probabilities` (equally likely leaders make a tie).",
    )
    score: float | None = Field(
        default=None,
        description="Single-answer score; with `verdict_mode: logprobs`, the most likely score (the "
        "lowest of equally likely ones); with `samples` above 1, the mean of the parsed samples' scores.",
    )
    expected_score: float | None = Field(
        default=None,
        description="`verdict_mode: logprobs` grading only: the probability-weighted mean score "
        "(G-Eval style), a finer signal than `score`.",
    )
    probabilities: dict[str, float] | None = Field(
        default=None,
        description="`verdict_mode: logprobs` only: the item's verdict distribution, keyed `A`, `B`, "
        "`tie` (with `swap: conservative`, the mean of both orders'), or by score when grading.",
    )
    consistent: bool | None = Field(
        default=None,
        description="Conservative swap: whether both orders agreed (null for other swap modes). With "
        "`verdict_mode: logprobs`, whether both orders' most likely labels agreed; with `samples` above 1, "
        "whether each order's own majority agreed.",
    )
    votes: dict[str, int | float] | None = Field(
        default=None,
        description="`samples` above 1, pairwise: how many parsed samples (of both orders) gave each "
        "verdict, keyed `A`, `B`, `tie`; `verdict` is the one with the most (a tie when labels share it).",
    )
    score_std: float | None = Field(
        default=None,
        description="`samples` above 1, single: the sample standard deviation of the parsed scores "
        "(`score` is their mean); null with fewer than two.",
    )
    agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="`samples` above 1: the share of parsed samples that gave the most common verdict "
        "(or score).",
    )
    error: str | None = Field(default=None, description="Why the item failed.")
    generated_references: list[str] | None = Field(
        default=None,
        description='Reference answers the judge wrote (`reference: {"auto": true}`), one per turn.',
    )
    cached: bool = Field(
        default=False, description="Every judge call of the item was served from the verdict cache."
    )
    orders: list[OrderResult] = Field(
        default_factory=list, description="Every order (and sample) judged, with raw output."
    )
    rubric: ItemRubric | None = Field(
        default=None, description="The item's own rubric, as it was graded with (single grading)."
    )
    judges: list[JudgeResult] | None = Field(
        default=None,
        description="A jury's item (`judges`): every judge's own result, in the request's order of judges. "
        "`verdict` / `score` are then their aggregate, `votes` the judges (or weight) behind each verdict, "
        "`agreement` the share of judges giving the jury's verdict (or the most common score), "
        "`score_std` the spread of their scores, and `consistent` whether the jury's verdict over every "
        "judge's first order equals its verdict over their swapped order.",
    )


class JobOut(BaseModel):
    id: uuid.UUID
    kind: JobKind = Field(description="The job's kind.", json_schema_extra=_registered_kinds)
    status: JobStatus
    model: str = Field(description="The judge model serving the job.")
    progress: Progress
    stage: str | None = Field(default=None, description="Kind-specific stage, e.g. `references`, `judging`.")
    attempts: int = Field(ge=0, description="How many times a worker has started the job.")
    error: str | None = Field(default=None, description="Why the job failed.")
    detail: dict[str, Any] | None = Field(
        default=None,
        description="Kind-specific live figures; prompt optimization: `usage` (calls, tokens and cache hits "
        "spent, against the budget).",
    )
    params: dict[str, Any] = Field(description="The options the job runs with (template, swap, seed, ...).")
    metadata: dict[str, str] | None = Field(default=None, description="Your labels, as given at creation.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = Field(
        default=None,
        description="When a cancel was asked (null if none was). A running job keeps this and its "
        "`running` status until its pending work has left the scheduler, then shows `cancelled` "
        "(within seconds); the time stays on the ended job.",
    )
    results: list[ItemResult] | None = Field(
        default=None, description="All item results; present when a `wait` request saw the job end."
    )


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null at the end."
    )


class ResultPage(BaseModel):
    job_id: uuid.UUID
    status: JobStatus
    results: list[ItemResult]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null at the end."
    )


class CapCheck(BaseModel):
    """One of the server's per-job cost caps, against what a long job projects."""

    setting: str = Field(description="The cap's environment variable, e.g. `JUDGE_MAX_JOB_CALLS`.")
    limit: int = Field(ge=0, description="The cap's value.")
    projected: int = Field(
        ge=0, description="What the job would spend, at most (bounded by its budget where it has one)."
    )
    ok: bool = Field(description="Whether `projected` is within `limit`; a submission is refused otherwise.")
