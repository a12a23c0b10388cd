"""A judging job answered whole from the verdict cache, in the transaction that records it: no queue, no
worker, no engine, so its `?wait=` request answers at once."""

from __future__ import annotations

from collections.abc import Sequence
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
from app.judging.domain import JudgeItem
from app.judging.params import JudgingParams
from app.judging.planning import plan_item
from app.judging.results import item_result
from app.judging.templates import TemplateError


def answer_from_cache(
    session: Session,
    settings: Settings,
    queue: JobQueue,
    job: Job,
    inputs: Sequence[dict[str, Any]],
    params: JudgingParams,
    items: Sequence[JudgeItem],
    tenant: str,
) -> list[ItemResult] | None:
    """When the job's cache policy reads the cache and every call of every item is there: add the
    just-recorded ``job``'s items (``inputs``, holding ``items``) judged, end the job as succeeded and
    return its results. Else None, and nothing is added: the caller adds the items for a worker. Items
    whose references the judge would write first are left to the worker."""
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
    if len(outcomes) < len(judgments):
        return None
    hashes: list[dict[str, str]] = [{c.order: c.prompt_hash for c in j.calls} for j in judgments]
    stored = judging_repo.add_judged_items(session, job.id, inputs, outcomes, hashes, cached=True)
    job.started_at = utcnow()
    job.progress_done = len(outcomes)
    job.progress_failed = sum(o.status == "error" for o in outcomes)
    lifecycle.end(session, queue, job.id, "succeeded", None)
    return [item_result(row, calls) for row, calls in stored]
