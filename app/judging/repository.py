"""Every query about judgment items, judge calls and registered templates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.db.tables import JudgeCall, JudgmentItem, Template
from app.judging.domain import CallOutput, ItemOutcome, OrderOutcome


def add_items(session: Session, job_id: uuid.UUID, inputs: Sequence[dict[str, Any]]) -> None:
    session.add_all(JudgmentItem(job_id=job_id, index=i, inputs=data) for i, data in enumerate(inputs))
    session.flush()


def pending_items(session: Session, job_id: uuid.UUID) -> list[JudgmentItem]:
    stmt = (
        select(JudgmentItem)
        .where(JudgmentItem.job_id == job_id, JudgmentItem.status == "pending")
        .order_by(JudgmentItem.index)
    )
    return list(session.scalars(stmt))


def count_done(session: Session, job_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(JudgmentItem.job_id == job_id, JudgmentItem.status != "pending")
    return int(session.scalar(stmt) or 0)


def _replace_call(session: Session, item_id: int, order: str, sample: int, **values: Any) -> JudgeCall:
    # Unique on (item, order, sample): a re-run overwrites, never duplicates.
    session.execute(
        delete(JudgeCall).where(
            JudgeCall.item_id == item_id, JudgeCall.order == order, JudgeCall.sample == sample
        )
    )
    call = JudgeCall(item_id=item_id, order=order, sample=sample, **values)
    session.add(call)
    return call


def save_reference(
    session: Session, item: JudgmentItem, turn_index: int, output: CallOutput, prompt_hash: str
) -> None:
    refs = list(item.generated_references or [])
    refs = refs[:turn_index] + [output.raw]
    item.generated_references = refs
    _replace_call(
        session,
        item.id,
        "reference",
        turn_index,
        prompt_hash=prompt_hash,
        raw=output.raw,
        tokens_in=output.tokens_in,
        tokens_out=output.tokens_out,
        latency_ms=output.latency_ms,
        queue_ms=output.queue_ms,
    )


def _item_values(outcome: ItemOutcome) -> dict[str, Any]:
    """An item's columns that record its outcome."""
    return {
        "status": outcome.status,
        "verdict": outcome.verdict,
        "score": outcome.score,
        "consistent": outcome.consistent,
        "error": outcome.error,
        "probabilities": outcome.probs,
        "expected_score": outcome.expected_score,
    }


def _call_values(o: OrderOutcome, prompt_hashes: dict[str, str], cached: bool) -> dict[str, Any]:
    """A judge call's columns (but its item's id) for one order's outcome."""
    return {
        "order": o.order,
        "sample": o.sample,
        "prompt_hash": prompt_hashes.get(o.order, ""),
        "raw": o.raw,
        "verdict": o.verdict,
        "score": o.score,
        "error": o.error,
        "probabilities": o.probs,
        "tokens_in": o.tokens_in,
        "tokens_out": o.tokens_out,
        "latency_ms": o.latency_ms,
        "queue_ms": o.queue_ms,
        "cached": cached,
    }


def save_outcome(
    session: Session,
    item: JudgmentItem,
    outcome: ItemOutcome,
    prompt_hashes: dict[str, str],
    cached: bool = False,
) -> list[JudgeCall]:
    """Record the item's outcome (``cached``: its calls came from the verdict cache); returns its judge
    calls as stored."""
    calls = [
        _replace_call(session, item.id, **_call_values(o, prompt_hashes, cached)) for o in outcome.orders
    ]
    for name, value in _item_values(outcome).items():
        setattr(item, name, value)
    return calls


@dataclass(frozen=True)
class CallRow:
    """A judge call's values as :func:`add_judged_items` wrote them (they read like a stored call)."""

    item_id: int
    order: str
    sample: int
    prompt_hash: str
    raw: str
    verdict: str | None
    score: float | None
    error: str | None
    probabilities: dict[str, float] | None
    tokens_in: int
    tokens_out: int
    latency_ms: float
    queue_ms: float
    cached: bool


@dataclass(frozen=True)
class ItemRow:
    """An item's values as :func:`add_judged_items` wrote them (they read like a stored item)."""

    id: int
    job_id: uuid.UUID
    index: int
    inputs: dict[str, Any]
    status: str
    verdict: str | None
    score: float | None
    consistent: bool | None
    error: str | None
    probabilities: dict[str, float] | None
    expected_score: float | None
    calls: list[CallRow]
    generated_references: list[str] | None = None


def add_judged_items(
    session: Session,
    job_id: uuid.UUID,
    inputs: Sequence[dict[str, Any]],
    outcomes: Sequence[ItemOutcome],
    prompt_hashes: Sequence[dict[str, str]],
    cached: bool,
) -> list[ItemRow]:
    """Add a new job's items already judged (from the verdict cache) with their judge calls, a few
    statements however many items. Returns them as written."""
    items = [
        {"job_id": job_id, "index": i, "inputs": data, **_item_values(outcome)}
        for i, (data, outcome) in enumerate(zip(inputs, outcomes, strict=True))
    ]
    # Core inserts of the tables, without RETURNING: the driver sends the rows of one short statement
    # together (the ORM's bulk insert, or one long statement of every row, cost several times more).
    item_table, call_table = cast(Table, JudgmentItem.__table__), cast(Table, JudgeCall.__table__)
    session.execute(insert(item_table), items)
    ids = session.scalars(
        select(item_table.c.id).where(item_table.c.job_id == job_id).order_by(item_table.c.index)
    ).all()
    calls = [
        [CallRow(item_id=item_id, **_call_values(o, hashes, cached)) for o in outcome.orders]
        for item_id, outcome, hashes in zip(ids, outcomes, prompt_hashes, strict=True)
    ]
    flat = [asdict(call) for item_calls in calls for call in item_calls]
    if flat:
        session.execute(insert(call_table), flat)
    return [
        ItemRow(id=item_id, calls=item_calls, **item)
        for item_id, item, item_calls in zip(ids, items, calls, strict=True)
    ]


def count_failed(session: Session, job_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(JudgmentItem.job_id == job_id, JudgmentItem.status == "error")
    return int(session.scalar(stmt) or 0)


def first_error(session: Session, job_id: uuid.UUID) -> str | None:
    """The error of the job's first item (by index) that ended in error."""
    stmt = (
        select(JudgmentItem.error)
        .where(JudgmentItem.job_id == job_id, JudgmentItem.status == "error")
        .order_by(JudgmentItem.index)
        .limit(1)
    )
    return session.scalar(stmt)


def results_page(
    session: Session, job_id: uuid.UUID, after_index: int, limit: int, status: str | None = None
) -> list[JudgmentItem]:
    stmt = select(JudgmentItem).where(JudgmentItem.job_id == job_id, JudgmentItem.index > after_index)
    if status is not None:
        stmt = stmt.where(JudgmentItem.status == status)
    stmt = stmt.order_by(JudgmentItem.index).limit(limit).options(selectinload(JudgmentItem.calls))
    return list(session.scalars(stmt))


# Templates -----------------------------------------------------------------------------------


def _visible_to(tenant: str) -> ColumnElement[bool]:
    """A tenant sees its own templates and the operator's (no owner), never another tenant's."""
    return or_(Template.owner == tenant, Template.owner.is_(None))


def latest_template(session: Session, name: str, version: int | None, tenant: str) -> Template | None:
    """The tenant's template of that name (latest version, or ``version``), else the operator's."""
    stmt = select(Template).where(Template.name == name, _visible_to(tenant))
    if version is not None:
        stmt = stmt.where(Template.version == version)
    stmt = stmt.order_by(Template.owner.is_(None), Template.version.desc()).limit(1)
    return session.scalars(stmt).first()


def own_latest_template(session: Session, name: str, owner: str | None) -> Template | None:
    """The latest version of ``owner``'s template of that name (for numbering a new version)."""
    owned = Template.owner.is_(None) if owner is None else Template.owner == owner
    stmt = select(Template).where(Template.name == name, owned).order_by(Template.version.desc()).limit(1)
    return session.scalars(stmt).first()


def list_templates(session: Session, tenant: str) -> list[Template]:
    stmt = select(Template).where(_visible_to(tenant)).order_by(Template.name, Template.version)
    return list(session.scalars(stmt))


def add_template(session: Session, template: Template) -> bool:
    """Add the template; False (and nothing added) when its owner, name and version are taken: a
    concurrent registration of the name numbered its version the same."""
    try:
        with session.begin_nested():
            session.add(template)
    except IntegrityError:
        return False
    return True


def items_by_id(session: Session, ids: Sequence[int]) -> list[JudgmentItem]:
    return list(session.scalars(select(JudgmentItem).where(JudgmentItem.id.in_(ids))))


def items_of_jobs(
    session: Session, job_ids: Sequence[uuid.UUID], indices: Sequence[int] | None = None
) -> list[JudgmentItem]:
    """The items (with their calls) of these jobs (a jury's members), only at ``indices`` if given."""
    if not job_ids:
        return []
    stmt = select(JudgmentItem).where(JudgmentItem.job_id.in_(job_ids))
    if indices is not None:
        stmt = stmt.where(JudgmentItem.index.in_(indices))
    return list(session.scalars(stmt.options(selectinload(JudgmentItem.calls))))
