"""The service's tables. The schema itself is built only by the Alembic migrations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import (
    Base,
    JSONType,
    NulSafeJSON,
    NulSafeText,
    TimestampMixin,
    UTCDateTime,
    new_uuid,
    utcnow,
)

# SQLite only auto-increments a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Job(TimestampMixin, Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    tenant: Mapped[str] = mapped_column(String(128), nullable=False, default="default")
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    queue: Mapped[str] = mapped_column(String(200), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    progress_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Judging: items that ended in error (their cause is on each item).
    progress_failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    stage: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # When a client first asked to cancel (kept after the job ends); set together with the flag.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(NulSafeText)
    # Kind-specific live figures (prompt optimization: calls and tokens spent against the budget).
    detail: Mapped[dict[str, Any] | None] = mapped_column(NulSafeJSON)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The client's own labels (string to string), and where to call when the job ends. (The attribute is
    # not named `metadata`, which SQLAlchemy's declarative base reserves.)
    job_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSONType)
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    # A jury's member job (one per judge model, on that model's queue) names its jury job here.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)

    items: Mapped[list[JudgmentItem]] = relationship(back_populates="job", lazy="raise")

    __table_args__ = (
        Index("ix_jobs_tenant_created_at", "tenant", "created_at"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )


class JudgmentItem(TimestampMixin, Base):
    __tablename__ = "judgment_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    # pending until judged; then ok | error
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    verdict: Mapped[str | None] = mapped_column(String(8))
    score: Mapped[float | None] = mapped_column(Float)
    consistent: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(NulSafeText)
    # verdict_mode logprobs: the combined label distribution, and (grading) the expected score.
    probabilities: Mapped[dict[str, float] | None] = mapped_column(JSONType)
    expected_score: Mapped[float | None] = mapped_column(Float)
    # Reference answers the judge wrote itself (reference: {"auto": true}), one per turn.
    generated_references: Mapped[list[str] | None] = mapped_column(NulSafeJSON)

    job: Mapped[Job] = relationship(back_populates="items", lazy="raise")
    calls: Mapped[list[JudgeCall]] = relationship(
        back_populates="item", lazy="raise", order_by="JudgeCall.id"
    )

    __table_args__ = (UniqueConstraint("job_id", "index"),)


class JudgeCall(TimestampMixin, Base):
    """One raw model call made for an item: a judgment in one order, or a generated reference."""

    __tablename__ = "judge_calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("judgment_items.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # AB | BA | single | reference
    order: Mapped[str] = mapped_column(String(16), nullable=False)
    sample: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    prompt_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    raw: Mapped[str] = mapped_column(NulSafeText, nullable=False)
    verdict: Mapped[str | None] = mapped_column(String(8))
    score: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(NulSafeText)
    # verdict_mode logprobs: this order's label distribution, in the caller's labels.
    probabilities: Mapped[dict[str, float] | None] = mapped_column(JSONType)
    tokens_in: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    # How long the call waited in the scheduler's queue before the engine started on it.
    queue_ms: Mapped[float] = mapped_column(Float, nullable=False, default=0.0, server_default="0")
    # Served from the verdict cache: no engine call was made for it.
    cached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())

    item: Mapped[JudgmentItem] = relationship(back_populates="calls", lazy="raise")

    __table_args__ = (UniqueConstraint("item_id", "order", "sample"),)


class Template(TimestampMixin, Base):
    """A client-registered judge template (built-in templates ship as package data)."""

    __tablename__ = "templates"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    multi_turn: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    reference: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    cot: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    system: Mapped[str] = mapped_column(Text, nullable=False, default="")
    user: Mapped[str] = mapped_column(Text, nullable=False)
    response_prefix: Mapped[str] = mapped_column(Text, nullable=False, default="")
    placeholders: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    owner: Mapped[str | None] = mapped_column(String(128))
    # How the judge's verdict is read when a request names no parser: "strict" or "fastchat".
    parser: Mapped[str] = mapped_column(String(16), nullable=False, default="strict", server_default="strict")

    # Each tenant numbers its own versions (an operator template has no owner).
    __table_args__ = (UniqueConstraint("owner", "name", "version"),)


class ModelRecord(TimestampMixin, Base):
    """A judge model the service can serve (pulled, or produced by a training job)."""

    __tablename__ = "models"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    backend: Mapped[str] = mapped_column(String(32), nullable=False)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    iteration: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    owner: Mapped[str | None] = mapped_column(String(128))


class Dataset(TimestampMixin, Base):
    """Labelled examples uploaded by a client (prompt optimization reads its splits from here)."""

    __tablename__ = "datasets"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    tenant: Mapped[str] = mapped_column(String(128), nullable=False, default="default")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    row_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Input field names every row has (e.g. ["text"]), and the distinct labels with their counts.
    fields: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    label_counts: Mapped[dict[str, int]] = mapped_column(JSONType, nullable=False)

    __table_args__ = (Index("ix_datasets_tenant_created_at", "tenant", "created_at"),)


class DatasetRow(Base):
    __tablename__ = "dataset_rows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    )
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    inputs: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False)
    label: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (UniqueConstraint("dataset_id", "index"),)


class PredictionCache(TimestampMixin, Base):
    """A model's raw output for one prompt under one decoding: never computed twice, across a tenant's
    jobs (or every tenant's, with ``prediction_cache_scope = operator``).

    ``key`` hashes (scope, model, decoding, the exact conversation); the other columns say what it was.
    """

    __tablename__ = "prediction_cache"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The tenant whose job computed it, which alone may read it; null: shared by every tenant.
    tenant: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    prompt_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    example_hash: Mapped[str | None] = mapped_column(String(64))
    decoding: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    raw: Mapped[str] = mapped_column(NulSafeText, nullable=False)
    tokens_in: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class VerdictCache(TimestampMixin, Base):
    """What the engine returned for one judge call, reused by an identical call of a later judging job.

    ``key`` hashes the call's identity (scope, model and weights, template name@version and text, parser,
    decoding, the item's inputs, the order; see :mod:`app.judging.verdict_cache`); the other columns say
    what it was and what came back: the generated text, or the label distribution (logprobs verdicts).
    """

    __tablename__ = "verdict_cache"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The tenant whose job computed it, which alone may read it; null: shared by every tenant.
    tenant: Mapped[str | None] = mapped_column(String(128))
    # The judge model's identity (app.judging.verdict_cache.model_identity).
    model_key: Mapped[str] = mapped_column(String(64), nullable=False)
    order: Mapped[str] = mapped_column(String(16), nullable=False)
    prompt_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    text: Mapped[str | None] = mapped_column(NulSafeText)
    stop_string: Mapped[str | None] = mapped_column(String(200))
    probabilities: Mapped[dict[str, float] | None] = mapped_column(JSONType)
    mass: Mapped[float | None] = mapped_column(Float)
    tokens_in: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class PoRun(TimestampMixin, Base):
    """A prompt-optimization job's checkpoint: the search state after its last completed step, and
    what it has spent."""

    __tablename__ = "po_runs"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[dict[str, Any]] = mapped_column(NulSafeJSON, nullable=False)
    calls: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cache_hits: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class PoCandidate(TimestampMixin, Base):
    """One prompt the search considered: where it came from and how it scored."""

    __tablename__ = "po_candidates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(32), nullable=False)
    round: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(NulSafeText, nullable=False)
    parent_key: Mapped[str | None] = mapped_column(String(32))
    # initial | edit | paraphrase
    origin: Mapped[str] = mapped_column(String(16), nullable=False)
    gradient: Mapped[str | None] = mapped_column(NulSafeText)
    rejected: Mapped[str | None] = mapped_column(NulSafeText)
    pulls: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    examples: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    estimate: Mapped[float | None] = mapped_column(Float)
    minibatch_score: Mapped[float | None] = mapped_column(Float)
    dev_score: Mapped[float | None] = mapped_column(Float)
    in_beam: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    __table_args__ = (UniqueConstraint("job_id", "key"),)


class PoRound(TimestampMixin, Base):
    """A completed round of a prompt-optimization search."""

    __tablename__ = "po_rounds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    round: Mapped[int] = mapped_column(Integer, nullable=False)
    beam: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    best_key: Mapped[str] = mapped_column(String(32), nullable=False)
    best_dev_score: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(NulSafeJSON, nullable=False)

    __table_args__ = (UniqueConstraint("job_id", "round"),)


class SrRun(TimestampMixin, Base):
    """A self-reward job's checkpoint: the loop state after its last completed stage."""

    __tablename__ = "sr_runs"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[dict[str, Any]] = mapped_column(NulSafeJSON, nullable=False)


class SrPrompt(TimestampMixin, Base):
    """A prompt of an iteration: written by the model (self-instruct), kept or dropped with the reason."""

    __tablename__ = "sr_prompts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    iteration: Mapped[int] = mapped_column(Integer, nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(NulSafeText, nullable=False)
    raw: Mapped[str] = mapped_column(NulSafeText, nullable=False, default="")
    dropped: Mapped[str | None] = mapped_column(NulSafeText)

    __table_args__ = (UniqueConstraint("job_id", "iteration", "index"),)


class SrCandidate(TimestampMixin, Base):
    """One sampled response to a kept prompt."""

    __tablename__ = "sr_candidates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    iteration: Mapped[int] = mapped_column(Integer, nullable=False)
    prompt_index: Mapped[int] = mapped_column(Integer, nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(NulSafeText, nullable=False)
    # False when generation hit the token limit: such a response is kept but never judged or paired.
    finished: Mapped[bool] = mapped_column(Boolean, nullable=False)
    tokens_out: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    __table_args__ = (UniqueConstraint("job_id", "iteration", "prompt_index", "index"),)


class SrJudgment(TimestampMixin, Base):
    """One rubric judgment of a candidate by the model itself: raw text and parsed score (or error)."""

    __tablename__ = "sr_judgments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    iteration: Mapped[int] = mapped_column(Integer, nullable=False)
    prompt_index: Mapped[int] = mapped_column(Integer, nullable=False)
    candidate_index: Mapped[int] = mapped_column(Integer, nullable=False)
    sample: Mapped[int] = mapped_column(Integer, nullable=False)
    raw: Mapped[str] = mapped_column(NulSafeText, nullable=False)
    score: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(NulSafeText)

    __table_args__ = (UniqueConstraint("job_id", "iteration", "prompt_index", "candidate_index", "sample"),)


class SrPair(TimestampMixin, Base):
    """The preference pair of a prompt (best vs worst self-judged candidate), or why there is none."""

    __tablename__ = "sr_pairs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    iteration: Mapped[int] = mapped_column(Integer, nullable=False)
    prompt_index: Mapped[int] = mapped_column(Integer, nullable=False)
    kept: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str] = mapped_column(NulSafeText, nullable=False)
    chosen_index: Mapped[int | None] = mapped_column(Integer)
    rejected_index: Mapped[int | None] = mapped_column(Integer)
    chosen_score: Mapped[float | None] = mapped_column(Float)
    rejected_score: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("job_id", "iteration", "prompt_index"),)


class SrIteration(TimestampMixin, Base):
    """An iteration's outcome: the model it produced, its data counts, training and evaluation metrics."""

    __tablename__ = "sr_iterations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    # 0 is the SFT stage (M0 -> M1); t >= 1 the DPO iterations.
    iteration: Mapped[int] = mapped_column(Integer, nullable=False)
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    flags: Mapped[list[str]] = mapped_column(JSONType, nullable=False)

    __table_args__ = (UniqueConstraint("job_id", "iteration"),)


class ApiKey(TimestampMixin, Base):
    """A client's API key: only its prefix (for lookup) and its SHA-256 are stored, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    tenant: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DashboardSession(TimestampMixin, Base):
    """A browser signed in to the dashboard with an API key: the browser holds a random session id, of
    which only the SHA-256 is stored. Ends at ``expires_at``, on sign-out, or when its key is revoked."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    digest: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_dashboard_sessions_key_id", "key_id"),)


class IdempotencyKey(TimestampMixin, Base):
    """A client's ``Idempotency-Key``: the request it first came with, and what that request created."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    # e.g. "POST /v1/judgments/pairwise": a key names one request, whatever route it was sent to
    route: Mapped[str] = mapped_column(String(100), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)

    __table_args__ = (UniqueConstraint("tenant", "key"),)


class WebhookDelivery(TimestampMixin, Base):
    """The outbox of job-end callbacks: written in the transaction that ends the job, sent (and retried)
    by a deliverer. The id is the event id receivers see (`X-Judge-Event-Id`)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    # What the job looked like when it ended; the body adds the results URL.
    payload: Mapped[dict[str, Any]] = mapped_column(NulSafeJSON, nullable=False)
    # pending (due at next_attempt_at; also while a deliverer holds it) | delivered | failed (gave up)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(NulSafeText)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # A job ends once, so it is announced once.
        UniqueConstraint("job_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )


class WebhookDeliveryAttempt(TimestampMixin, Base):
    """One POST of a webhook delivery, as the deliverer recorded it (the delivery row keeps only the
    last); listed by ``GET /v1/jobs/{id}/deliveries``."""

    __tablename__ = "webhook_delivery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    )
    # 1-based, the delivery's `X-Judge-Delivery-Attempt`
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    duration_ms: Mapped[float] = mapped_column(Float, nullable=False)
    # delivered | retrying (due again at next_attempt_at) | failed (the last attempt)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(NulSafeText)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)
