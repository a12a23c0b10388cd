"""Summaries of a judging job or of the judging jobs that carry some metadata: the jobs and their items
read through the repositories (every read scoped by tenant), the figures made by the pure layers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import InvalidInput, NotFound
from app.db.tables import Job
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.schemas import ItemResult
from app.judging import repository as judging_repo
from app.judging.jury_members import jury_of, ordered_members
from app.judging.kind import NAMES as JUDGING_KINDS
from app.judging.results import item_result
from app.summaries.cache import SummaryCache, ended_key
from app.summaries.compose import summarize
from app.summaries.jury import JudgeRun, jury_figures
from app.summaries.observations import JudgedItem, observations
from app.summaries.schemas import JuryOut, SummaryOut

# The most jobs one summary reads (an MT-Bench run is a few dozen).
MAX_JOBS = 10_000
# Summaries of ended jobs, per process (app.summaries.cache).
_ENDED = SummaryCache()


@dataclass(frozen=True)
class SummaryOptions:
    rounds: int | None = None  # None: the configured default
    seed: int = 0
    baseline: str | None = None

    def bootstrap_rounds(self, settings: Settings) -> int:
        if self.rounds is None:
            return min(settings.summary_bootstrap_rounds, settings.max_summary_bootstrap_rounds)
        if self.rounds > settings.max_summary_bootstrap_rounds:
            raise InvalidInput(
                f"rounds is {self.rounds}; at most {settings.max_summary_bootstrap_rounds} "
                "(JUDGE_MAX_SUMMARY_BOOTSTRAP_ROUNDS)",
                "rounds",
            )
        return self.rounds


def _items(session: Session, jobs: Sequence[Job]) -> list[JudgedItem]:
    return [
        JudgedItem(
            pairwise=job.kind == "judge_pairwise",
            metadata=job.job_metadata or {},
            inputs=row.inputs,
            result=item_result(row),
        )
        for job in jobs
        for row in judging_repo.results_page(session, job.id, -1, job.progress_total + 1)
    ]


def _one_job(session: Session, job_id: uuid.UUID, tenant: str) -> list[Job]:
    job = jobs_service.get_job(session, job_id, tenant)
    if job.kind not in JUDGING_KINDS:
        raise InvalidInput(f"job {job_id} is a {job.kind} job; only judging jobs have a summary", "job_id")
    return [job]


def _tagged_jobs(session: Session, tenant: str, metadata: list[str]) -> list[Job]:
    if not metadata:
        raise InvalidInput("name at least one `metadata` filter (`key:value`)", "metadata")
    wanted = jobs_service.parse_metadata_filters(metadata)
    jobs = jobs_repo.list_jobs(session, tenant=tenant, limit=MAX_JOBS, metadata=wanted, kinds=JUDGING_KINDS)
    if not jobs:
        raise NotFound("no judging job has this metadata", "metadata")
    return jobs


def _summary(
    db: Database, pick: Callable[[Session], list[Job]], settings: Settings, options: SummaryOptions
) -> SummaryOut:
    rounds = options.bootstrap_rounds(settings)
    with db.unit_of_work() as session:
        jobs = pick(session)
        # Ended jobs' figures do not change: the same jobs and options give the same summary.
        key = ended_key(jobs, rounds, options.seed, options.baseline)
        cached = _ENDED.get(key)
        if cached is not None:
            return cached
        job_ids = [job.id for job in jobs]
        seen = observations(_items(session, jobs))
        jury = _jury(session, jobs[0]) if len(jobs) == 1 else None
    # The statistics (up to a second or so of bootstrap refits) run after the session has closed.
    summary = summarize(job_ids, seen, rounds, options.seed, options.baseline)
    if jury is not None:
        summary = summary.model_copy(update={"jury": jury})
    _ENDED.put(key, summary)
    return summary


def _jury(session: Session, job: Job) -> JuryOut | None:
    """A jury job's agreement figures, from its members' items (None: not a jury)."""
    jury = jury_of(job)
    if jury is None:
        return None
    members = ordered_members(session, job, jury)
    results: dict[uuid.UUID, dict[int, ItemResult]] = {m.id: {} for m in members}
    for row in judging_repo.items_of_jobs(session, [m.id for m in members]):
        results[row.job_id][row.index] = item_result(row)
    weights = {j.model: j.weight for j in jury.judges}
    runs = [JudgeRun(m.model, m.id, weights[m.model], results[m.id]) for m in members]
    return jury_figures(jury.aggregate, job.kind == "judge_pairwise", range(job.progress_total), runs)


def job_summary(
    db: Database, job_id: uuid.UUID, tenant: str, settings: Settings, options: SummaryOptions
) -> SummaryOut:
    """The summary of one judging job (404 for another tenant's job, 422 for one of another kind)."""
    return _summary(db, lambda session: _one_job(session, job_id, tenant), settings, options)


def jobs_summary(
    db: Database, tenant: str, metadata: list[str], settings: Settings, options: SummaryOptions
) -> SummaryOut:
    """The summary of every judging job of the tenant whose metadata holds all ``metadata`` filters
    (`key:value`), newest job first (404 when there is none)."""
    return _summary(db, lambda session: _tagged_jobs(session, tenant, metadata), settings, options)
