"""What the dashboard pages show, read through the jobs service (so every read is scoped by tenant)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, get_args

from sqlalchemy.orm import Session

import app.kinds  # noqa: F401 - registers the job kinds
from app.core.errors import InvalidInput, NotFound
from app.dashboard.leaderboard import RunItem, baseline_of, run_judgments
from app.jobs import kinds as job_kinds
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.schemas import ItemResult, JobOut, JobPage, JobStatus
from app.judging import repository as judging_repo
from app.judging.results import item_result
from app.mtbench.tables import LeaderboardRow, leaderboard
from app.prompt_opt.schemas import PromptOptimizationResults
from app.self_reward.schemas import SelfRewardResults
from app.stats.batch import BatchStats, batch_stats

JOBS_PER_PAGE = 25
ITEMS_PER_PAGE = 50
STATUSES: tuple[str, ...] = get_args(JobStatus)
# The metadata key that tags the jobs of an MT-Bench run (`judge mtbench run`).
RUN_TAG = "mtbench_run"
MAX_RUN_JOBS = 10_000


def _choice(value: str | None, allowed: tuple[str, ...], field: str) -> str | None:
    """An optional filter from a form: empty means any; anything else must be one of ``allowed``."""
    if not value:
        return None
    if value not in allowed:
        raise InvalidInput(f"{field} must be one of {', '.join(allowed)} (got {value!r})", field)
    return value


def jobs_page(
    session: Session,
    tenant: str,
    status: str | None,
    kind: str | None,
    cursor: str | None,
    visible: tuple[str, ...],
) -> JobPage:
    """A page of the tenant's jobs of the ``visible`` kinds (those the viewer's key may read)."""
    return jobs_service.list_jobs(
        session,
        tenant,
        JOBS_PER_PAGE,
        cursor or None,
        _choice(status, STATUSES, "status"),
        _choice(kind, job_kinds.names(), "kind"),
        None,
        visible=visible,
    )


@dataclass(frozen=True)
class ShownItem:
    """One item on the job page: its result and the judged turn's inputs."""

    result: ItemResult
    question: str
    answer_a: str
    answer_b: str | None


@dataclass(frozen=True)
class JudgingView:
    stats: BatchStats
    items: list[ShownItem]
    page: int
    pages: int


@dataclass(frozen=True)
class JobDetail:
    job: JobOut
    judging: JudgingView | None = None
    outcome: PromptOptimizationResults | SelfRewardResults | None = None


def _shown(inputs: dict[str, Any], result: ItemResult) -> ShownItem:
    turn = int(inputs.get("turn") or len(inputs["turns"])) - 1
    answers_b = inputs.get("answers_b")
    return ShownItem(
        result=result,
        question=inputs["turns"][turn],
        answer_a=inputs["answers_a"][turn],
        answer_b=answers_b[turn] if answers_b is not None else None,
    )


def job_detail(
    session: Session, job_id: uuid.UUID, tenant: str, page: int, visible: tuple[str, ...]
) -> JobDetail:
    """The job (404 for another tenant's, and for a kind not ``visible`` to the viewer's key), with its
    judging items (one page of them, and the figures of all of them) or a long job's results."""
    job = jobs_service.get_job(session, job_id, tenant)
    if job.kind not in visible:
        raise NotFound(f"no job {job_id}")
    shown = jobs_service.job_out(job)
    if job.kind in job_kinds.long_kinds():
        outcome = jobs_service.results_page(session, job.id, tenant, 1, None)
        assert isinstance(outcome, PromptOptimizationResults | SelfRewardResults)
        return JobDetail(job=shown, outcome=outcome)
    rows = judging_repo.results_page(session, job.id, -1, job.progress_total + 1)
    results = [item_result(row) for row in rows]
    pages = max(1, -(-len(rows) // ITEMS_PER_PAGE))
    if not 1 <= page <= pages:
        raise InvalidInput(f"page must be between 1 and {pages}", "page")
    start = (page - 1) * ITEMS_PER_PAGE
    items = [_shown(rows[i].inputs, results[i]) for i in range(start, min(start + ITEMS_PER_PAGE, len(rows)))]
    return JobDetail(job=shown, judging=JudgingView(batch_stats(results), items, page, pages))


@dataclass(frozen=True)
class Leaderboard:
    run: str
    jobs: list[JobOut]
    single: list[LeaderboardRow]
    pairwise: list[LeaderboardRow]
    baseline: str | None
    turns: list[int]
    pending: int
    # Position figures over every pairwise item of the run.
    stats: BatchStats | None


def mtbench_runs(session: Session, tenant: str) -> list[str]:
    return jobs_repo.metadata_values(session, tenant, RUN_TAG)


def run_leaderboard(session: Session, tenant: str, run: str) -> Leaderboard:
    """The standings of an MT-Bench run from its tagged judging jobs (404 when the tenant has none)."""
    jobs = jobs_repo.list_jobs(session, tenant=tenant, limit=MAX_RUN_JOBS, metadata={RUN_TAG: run})
    if not jobs:
        raise NotFound(f"no MT-Bench run {run!r}", "run")
    items: list[RunItem] = []
    pairwise_results: list[ItemResult] = []
    for job in jobs:
        if job.kind in job_kinds.long_kinds():
            continue
        template = str(job.params.get("template") or "")
        for row in judging_repo.results_page(session, job.id, -1, job.progress_total + 1):
            result = item_result(row)
            items.append(RunItem(job.model, template, result))
            if job.kind == "judge_pairwise":
                pairwise_results.append(result)
    judged = run_judgments(items)
    baseline = baseline_of(judged.pairs)
    single = leaderboard(judged.single) if judged.single else []
    return Leaderboard(
        run=run,
        jobs=[jobs_service.job_out(job) for job in jobs],
        single=single,
        pairwise=leaderboard(judged.pairs, baseline) if judged.pairs else [],
        baseline=baseline,
        turns=sorted({turn for row in single for turn in row.turn_scores}),
        pending=judged.pending,
        stats=batch_stats(pairwise_results) if pairwise_results else None,
    )
