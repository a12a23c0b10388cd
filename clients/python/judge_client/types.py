"""Typed objects of the judge service's API: what you send (items) and what comes back (jobs, results).

Response models ignore fields they do not know, so a newer service does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Literal["judge_pairwise", "judge_single", "prompt_opt", "self_reward"]
ItemStatus = Literal["pending", "ok", "error"]
Kind = Literal["pairwise", "single"]
Swap = Literal["conservative", "random", "none"]
VerdictMode = Literal["generate", "logprobs"]
VerdictParser = Literal["strict", "fastchat"]
Aggregate = Literal["majority", "mean", "weighted"]  # how a jury's verdicts combine
Verdict = Literal["A", "B", "tie"]

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Progress(_Response):
    done: int = 0
    total: int = 0
    failed: int = 0  # items (counted in done) that ended in error


class Template(_Response):
    """A judge template: a built-in one, or a version your tenant registered."""

    name: str
    version: int
    mode: Literal["pairwise", "single"]
    multi_turn: bool = False
    reference: bool = False
    cot: bool = False
    builtin: bool = False
    system: str = ""
    user: str
    response_prefix: str = ""
    placeholders: list[str] = Field(default_factory=list)
    description: str = ""

    @property
    def ref(self) -> str:
        """How requests name this exact version: ``name@version``."""
        return f"{self.name}@{self.version}"


class OrderResult(_Response):
    """One order the judge saw: ``AB`` (answer_a first), ``BA`` or ``single``, with its raw output."""

    order: Literal["AB", "BA", "single"]
    sample: int = 0  # which of the order's samples (``samples=`` above 1), from 0
    raw: str
    verdict: Verdict | None = None
    score: float | None = None
    error: str | None = None
    probabilities: dict[str, float] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    queue_ms: float = 0.0
    cached: bool = False  # served from the verdict cache: no engine call


class JudgeResult(_Response):
    """One judge's own result for a jury's item (``judges=``)."""

    model: str
    weight: float = 1.0
    job_id: str
    status: ItemStatus
    verdict: Verdict | None = None
    score: float | None = None
    consistent: bool | None = None
    error: str | None = None
    cached: bool = False
    orders: list[OrderResult] = Field(default_factory=list)


class ItemResult(_Response):
    """The outcome for one item. ``verdict`` is in your labels (``A`` is always answer_a, whatever order
    it was shown in); ``consistent`` says whether both orders agreed (conservative swap). With
    ``samples=`` above 1: ``votes`` per verdict (pairwise; the verdict has the most), ``score_std``
    (single; ``score`` is the mean) and ``agreement``, the share of samples giving the most common one.
    A jury's item (``judges=``): the aggregate, with ``judges`` (each judge's own result), ``votes`` (the
    judges, or their weight, behind each verdict) and ``agreement`` (the share of judges agreeing)."""

    index: int
    id: str | None = None
    status: ItemStatus
    verdict: Verdict | None = None
    score: float | None = None
    expected_score: float | None = None
    probabilities: dict[str, float] | None = None
    consistent: bool | None = None
    votes: dict[str, float] | None = None
    score_std: float | None = None
    agreement: float | None = None
    error: str | None = None
    generated_references: list[str] | None = None
    cached: bool = False  # every judge call of the item came from the verdict cache
    orders: list[OrderResult] = Field(default_factory=list)
    judges: list[JudgeResult] | None = None

    @property
    def ok(self) -> bool:
        """Whether the item was judged and its verdict or score parsed."""
        return self.status == "ok"


class Job(_Response):
    """A job on the service: its status and progress. ``results`` holds its item results only when a
    submission's server-side ``wait=`` saw the job end (``submit_batch(..., wait=60)``); ``Judge.wait``
    returns the job without them: iterate ``Judge.results(job)``, which uses them when present."""

    id: str
    kind: JobKind | str
    status: JobStatus
    model: str
    progress: Progress
    stage: str | None = None
    attempts: int = 0
    error: str | None = None
    detail: dict[str, Any] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    results: list[ItemResult] | None = None

    @property
    def ended(self) -> bool:
        """Whether the job reached a final status (succeeded, failed or cancelled)."""
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    question: str | None = None
    turns: list[str] | None = None
    reference: str | None = None
    references: list[str] | None = None
    turn: int | None = None


class PairwiseItem(_Item):
    """One pair to judge: ``question`` with ``answer_a``/``answer_b``, or ``turns`` with ``answers_a``/
    ``answers_b`` (one per turn). The service validates the shape and names the field at fault."""

    answer_a: str | None = None
    answer_b: str | None = None
    answers_a: list[str] | None = None
    answers_b: list[str] | None = None


class SingleItem(_Item):
    """One answer to grade: ``question`` with ``answer``, or ``turns`` with ``answers`` (one per turn)."""

    answer: str | None = None
    answers: list[str] | None = None
