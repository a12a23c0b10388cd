"""A jury job and its member jobs (one per judge model, each an ordinary judging job on its model's
queue): the jury's progress follows its members', it ends once they all have, with each item's verdict
the judges' aggregate, and its results show every judge's own result beside the aggregate."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.db.tables import Job, JudgmentItem
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue
from app.jobs.schemas import ItemResult, JudgeResult
from app.judging import repository as judging_repo
from app.judging.domain import Mode, Verdict
from app.judging.jury import JudgeVote, JuryOutcome, jury_verdict
from app.judging.params import JudgingParams, JuryParams
from app.judging.results import item_result
from app.judging.samples import majority


def jury_of(job: Job) -> JuryParams | None:
    """The job's jury (None: a one-judge job)."""
    if not job.params.get("jury"):
        return None
    return JudgingParams.model_validate(job.params).jury


def _mode(job: Job) -> Mode:
    return "pairwise" if job.kind == "judge_pairwise" else "single"


def ordered_members(session: Session, parent: Job, jury: JuryParams) -> list[Job]:
    """The jury's member jobs in the order of its judges (those recorded so far)."""
    by_model = {member.model: member for member in jobs_repo.members(session, parent.id)}
    return [by_model[j.model] for j in jury.judges if j.model in by_model]


def _order_verdicts(result: ItemResult) -> dict[str, Verdict] | None:
    """The judge's verdict in each order it judged (its samples' majority), None when it has none."""
    by_order: dict[str, list[Verdict]] = {}
    for order in result.orders:
        if order.order in ("AB", "BA") and order.verdict is not None:
            by_order.setdefault(order.order, []).append(order.verdict)
    return {order: majority(verdicts) for order, verdicts in by_order.items()} or None


def _vote(result: ItemResult | None, weight: float) -> JudgeVote:
    if result is None or result.status != "ok":
        return JudgeVote(weight=weight)
    return JudgeVote(
        weight=weight, verdict=result.verdict, score=result.score, by_order=_order_verdicts(result)
    )


def _outcome(mode: Mode, jury: JuryParams, results: Sequence[ItemResult | None]) -> JuryOutcome:
    votes = [_vote(r, j.weight) for r, j in zip(results, jury.judges, strict=True)]
    return jury_verdict(mode, jury.aggregate, votes)


def _member_results(
    session: Session, members: Sequence[Job], indices: Sequence[int] | None = None
) -> dict[uuid.UUID, dict[int, ItemResult]]:
    rows = judging_repo.items_of_jobs(session, [m.id for m in members], indices)
    found: dict[uuid.UUID, dict[int, ItemResult]] = {}
    for row in rows:
        found.setdefault(row.job_id, {})[row.index] = item_result(row)
    return found


def members_moved(session: Session, queue: JobQueue, parent: Job) -> None:
    """A member progressed or ended (the parent's row is locked): the jury's progress is its members'
    mean progress; once every member has ended, each item gets the judges' aggregate and the jury ends
    (cancelled if a member was, failed if a member failed or every item did, else succeeded)."""
    jury = jury_of(parent)
    if jury is None:
        return
    members = ordered_members(session, parent, jury)
    if len(members) < len(jury.judges) or any(m.status not in jobs_repo.TERMINAL for m in members):
        done = sum(m.progress_done for m in members) // len(jury.judges)
        if done > parent.progress_done:
            lifecycle.record_progress(session, queue, parent.id, done, "judging")
        return
    failed = _aggregate_items(session, parent, jury, members)
    parent.progress_done = parent.progress_total
    parent.progress_failed = failed
    cancelled = [m for m in members if m.status == "cancelled"]
    broken = [m for m in members if m.status == "failed"]
    if cancelled or parent.cancel_requested:
        status, error = "cancelled", None
    elif broken:
        status = "failed"
        error = "; ".join(f"judge '{m.model}' failed: {m.error}" for m in broken)
    elif failed == parent.progress_total:
        status, error = "failed", "every item failed: no judge gave it a verdict"
    else:
        status, error = "succeeded", None
    session.flush()
    lifecycle.end(session, queue, parent.id, status, error)


def _aggregate_items(session: Session, parent: Job, jury: JuryParams, members: Sequence[Job]) -> int:
    """Write each item's aggregate onto the jury's items; returns how many ended in error."""
    mode = _mode(parent)
    found = _member_results(session, members)
    failed = 0
    for row in judging_repo.results_page(session, parent.id, -1, parent.progress_total + 1):
        outcome = _outcome(mode, jury, [found.get(m.id, {}).get(row.index) for m in members])
        _store(row, outcome)
        failed += row.status == "error"
    session.flush()
    return failed


def _store(row: JudgmentItem, outcome: JuryOutcome) -> None:
    row.status = "error" if outcome.error is not None else "ok"
    row.verdict = outcome.verdict
    row.score = outcome.score
    row.consistent = outcome.consistent
    row.error = outcome.error


def with_judges(session: Session, job: Job, rows: Sequence[JudgmentItem]) -> list[ItemResult]:
    """The items' results; a jury's carry every judge's own result and the judges' agreement."""
    results = [item_result(row) for row in rows]
    jury = jury_of(job)
    if jury is None or not rows:
        return results
    members = ordered_members(session, job, jury)
    found = _member_results(session, members, [row.index for row in rows])
    mode = _mode(job)
    shown = []
    for result in results:
        own = [found.get(m.id, {}).get(result.index) for m in members]
        judges = [
            _judge_result(member, juror.weight, mine)
            for member, juror, mine in zip(members, jury.judges, own, strict=True)
        ]
        update: dict[str, object] = {"judges": judges}
        if result.status == "ok" and len(members) == len(jury.judges):
            outcome = _outcome(mode, jury, own)
            update |= {"votes": outcome.votes, "agreement": outcome.agreement, "score_std": outcome.score_std}
        shown.append(result.model_copy(update=update))
    return shown


def _judge_result(member: Job, weight: float, result: ItemResult | None) -> JudgeResult:
    if result is None:
        return JudgeResult(model=member.model, weight=weight, job_id=member.id, status="pending")
    return JudgeResult(
        model=member.model,
        weight=weight,
        job_id=member.id,
        status=result.status,
        verdict=result.verdict,
        score=result.score,
        consistent=result.consistent,
        error=result.error,
        cached=result.cached,
        orders=result.orders,
    )
