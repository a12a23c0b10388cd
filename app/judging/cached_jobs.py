"""A judging job answered whole from the verdict cache, in the transaction that records it: no queue, no
worker, no engine, so its `?wait=` request answers at once. The lookup comes before the job is recorded
(recording takes the tenant's admission turn, held to the commit), the writes after."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.db.base import utcnow
from app.db.tables import Job
from app.jobs import lifecycle
from app.jobs.queue import JobQueue
from app.jobs.schemas import ItemResult
from app.judging import repository as judging_repo
from app.judging.cached_calls import JobCache, PlannedJudgment
from app.judging.domain import ItemOutcome, JudgeItem
from app.judging.ending import judging_end
from app.judging.params import JudgingParams
from app.judging.planning import plan_item
from app.judging.results import item_result
from app.judging.templates import TemplateError


@dataclass(frozen=True)
class CachedAnswer:
    """Every item's outcome, from the verdict cache, and the calls it stands for."""

    judgments: list[PlannedJudgment]
    outcomes: list[ItemOutcome]


def find_answer(
    session: Session,
    settings: Settings,
    params: JudgingParams,
    inputs: Sequence[dict[str, Any]],
    items: Sequence[JudgeItem],
    tenant: str,
) -> CachedAnswer | None:
    """The answer to a job about to be recorded (its items' ``inputs``, holding ``items``) when its cache
    policy reads the cache and every call of every item is there; else None. Items whose references
    the judge would write first are left to the worker."""
    cache = JobCache.for_job(params, tenant, settings.verdict_cache_scope)
    if cache is None or not cache.reads:
        return None
    if params.reference_auto and any(item.references is None for item in items):
        return None
    options = params.options()
    judgments = []
    try:
        for index, (data, item) in enumerate(zip(inputs, items, strict=True)):
            spec = params.templates[data["template"]]
            judgments.append(PlannedJudgment(spec, item, plan_item(item, spec, options, index)))
    except TemplateError:
        return None  # the worker fails such an item alone, with the reason
    outcomes = [o for o in cache.lookup(session, judgments) if o is not None]
    return CachedAnswer(judgments, outcomes) if len(outcomes) == len(judgments) else None


def record_answer(
    session: Session, queue: JobQueue, job: Job, inputs: Sequence[dict[str, Any]], answer: CachedAnswer
) -> list[ItemResult]:
    """Add the just-recorded ``job``'s items judged by ``answer``, end the job (failed if every item
    failed) and return its results (no queue, no worker)."""
    hashes: list[dict[str, str]] = [{c.order: c.prompt_hash for c in j.calls} for j in answer.judgments]
    stored = judging_repo.add_judged_items(session, job.id, inputs, answer.outcomes, hashes, cached=True)
    job.started_at = utcnow()
    job.progress_done = len(answer.outcomes)
    job.progress_failed = sum(o.status == "error" for o in answer.outcomes)
    errors = (o.error for o in answer.outcomes if o.status == "error")
    end = judging_end(job.progress_done, job.progress_failed, lambda: next(errors, None))
    lifecycle.end(session, queue, job.id, end.status, end.error)
    return [item_result(row) for row in stored]
