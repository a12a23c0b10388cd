"""Response schemas of job resources, shared by every job kind."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Literal["judge_pairwise", "judge_single", "prompt_opt", "self_reward"]


class Progress(BaseModel):
    done: int = Field(ge=0, description="Units finished (judging: items).")
    total: int = Field(ge=0, description="Units in the job.")


class OrderResult(BaseModel):
    order: Literal["AB", "BA", "single"] = Field(
        description="`AB`: answer_a shown first; `BA`: answer_b shown first; `single`: single-answer grading."
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
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)


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
        "lowest of equally likely ones).",
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
        "`verdict_mode: logprobs`, whether both orders' most likely labels agreed.",
    )
    error: str | None = Field(default=None, description="Why the item failed.")
    generated_references: list[str] | None = Field(
        default=None,
        description='Reference answers the judge wrote (`reference: {"auto": true}`), one per turn.',
    )
    orders: list[OrderResult] = Field(
        default_factory=list, description="Every order judged, with raw output."
    )


class JobOut(BaseModel):
    id: uuid.UUID
    kind: JobKind
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
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
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
