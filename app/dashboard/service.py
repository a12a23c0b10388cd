"""What the dashboard pages show, read through the jobs service (so every read is scoped by tenant)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, get_args

from sqlalchemy.orm import Session

import app.kinds  # noqa: F401 - registers the job kinds
from app.core.config import Settings
from app.core.db import Database
from app.core.errors import InvalidInput, NotFound
from app.dashboard import repository as dashboard_repo
from app.dashboard.charts import Histogram
from app.dashboard.diff import Segment, prompt_diff
from app.dashboard.figures import (
    AgreementMatrix,
    IterationCharts,
    SummaryCharts,
    agreement_matrix,
    iteration_charts,
    score_histogram,
    summary_charts,
)
from app.dashboard.filters import ItemFilter, job_ref, metadata_filters
from app.dashboard.leaderboard import RunItem, baseline_of, run_judgments
from app.jobs import kinds as job_kinds
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.schemas import ItemResult, JobOut, JobPage, JobStatus
from app.judging import repository as judging_repo
from app.judging.jury_members import with_judges
from app.judging.results import item_result
from app.mtbench.formats import ERROR_SCORE, SingleJudgment
from app.mtbench.tables import LeaderboardRow, leaderboard
from app.prompt_opt.schemas import PromptOptimizationResults
from app.self_reward.schemas import SelfRewardResults
from app.stats.batch import BatchStats, batch_stats
from app.summaries import service as summaries
from app.summaries.schemas import SummaryOut

JOBS_PER_PAGE = 25
ITEMS_PER_PAGE = 50
STATUSES: tuple[str, ...] = get_args(JobStatus)
# The metadata key that tags the jobs of an MT-Bench run (`judge mtbench run`).
RUN_TAG = "mtbench_run"
MAX_RUN_JOBS = 10_000
# MT-Bench grades answers from 1 to 10.
MTBENCH_SCALE = (1, 10)
# A grading job's scale when its parameters name none (the judging default).
DEFAULT_SCALE = (1, 10)


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
    metadata: str | None = None,
) -> JobPage:
    """A page of the tenant's jobs of the ``visible`` kinds (those the viewer's key may read);
    ``metadata``: `key=value` filters, separated by commas, that every job shown matches."""
    return jobs_service.list_jobs(
        session,
        tenant,
        JOBS_PER_PAGE,
        cursor or None,
        _choice(status, STATUSES, "status"),
        _choice(kind, job_kinds.names(), "kind"),
        None,
        metadata=metadata_filters(metadata),
        visible=visible,
    )


def find_job(session: Session, tenant: str, text: str, visible: tuple[str, ...]) -> uuid.UUID:
    """The job a pasted id names: the whole id, or the start of one that only one of the tenant's jobs
    (of the ``visible`` kinds) has (404 when none has it, 422 when several do)."""
    ref = job_ref(text)
    if ref.full is not None:
        return ref.full
    assert ref.prefix is not None
    found = dashboard_repo.ids_starting_with(session, tenant, ref.prefix, visible, limit=2)
    if not found:
        raise NotFound(f"no job id starts with {ref.prefix!r}", "id")
    if len(found) > 1:
        raise InvalidInput(
            f"more than one job id starts with {ref.prefix!r}: paste more of the id (or all of it)", "id"
        )
    return found[0]


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
    shown: ItemFilter
    matching: int  # items the filter keeps
    summary: SummaryOut
    charts: SummaryCharts
    agreement: AgreementMatrix | None
    scores: Histogram | None


@dataclass(frozen=True)
class PromptOptView:
    diff: list[Segment]


@dataclass(frozen=True)
class JobDetail:
    job: JobOut
    judging: JudgingView | None = None
    outcome: PromptOptimizationResults | SelfRewardResults | None = None
    prompt_opt: PromptOptView | None = None
    iterations: IterationCharts | None = None


def _shown(inputs: dict[str, Any], result: ItemResult) -> ShownItem:
    turn = int(inputs.get("turn") or len(inputs["turns"])) - 1
    answers_b = inputs.get("answers_b")
    return ShownItem(
        result=result,
        question=inputs["turns"][turn],
        answer_a=inputs["answers_a"][turn],
        answer_b=answers_b[turn] if answers_b is not None else None,
    )


def _scale(params: dict[str, Any]) -> tuple[int, int]:
    scale = params.get("scale")
    if isinstance(scale, dict) and isinstance(scale.get("min"), int) and isinstance(scale.get("max"), int):
        return scale["min"], scale["max"]
    return DEFAULT_SCALE


def _long_job(job: JobOut, outcome: PromptOptimizationResults | SelfRewardResults) -> JobDetail:
    if isinstance(outcome, PromptOptimizationResults):
        best = outcome.best_prompt
        diff = PromptOptView(prompt_diff(outcome.initial_prompt, best)) if best is not None else None
        return JobDetail(job=job, outcome=outcome, prompt_opt=diff)
    charts = iteration_charts([(it.iteration, it.metrics) for it in outcome.iterations])
    return JobDetail(job=job, outcome=outcome, iterations=charts)


def job_detail(
    db: Database,
    settings: Settings,
    job_id: uuid.UUID,
    tenant: str,
    page: int,
    visible: tuple[str, ...],
    shown: ItemFilter | None = None,
) -> JobDetail:
    """The job (404 for another tenant's, and for a kind not ``visible`` to the viewer's key), with its
    judging items (one page of those ``shown`` keeps, the figures of all of them, and the charts of its
    summary) or a long job's results and charts."""
    shown = shown or ItemFilter()
    with db.unit_of_work() as session:
        job = jobs_service.get_job(session, job_id, tenant)
        if job.kind not in visible:
            raise NotFound(f"no job {job_id}")
        out = jobs_service.job_out(job)
        if job.kind in job_kinds.long_kinds():
            outcome = jobs_service.results_page(session, job.id, tenant, 1, None)
            assert isinstance(outcome, PromptOptimizationResults | SelfRewardResults)
            return _long_job(out, outcome)
        rows = judging_repo.results_page(session, job.id, -1, job.progress_total + 1)
        inputs = [row.inputs for row in rows]
        results = with_judges(session, job, rows)  # a jury's items carry each judge's own result
    kept = [i for i, result in enumerate(results) if shown.keeps(result)]
    pages = max(1, -(-len(kept) // ITEMS_PER_PAGE))
    if not 1 <= page <= pages:
        raise InvalidInput(f"page must be between 1 and {pages}", "page")
    start = (page - 1) * ITEMS_PER_PAGE
    items = [_shown(inputs[i], results[i]) for i in kept[start : start + ITEMS_PER_PAGE]]
    summary = summaries.job_summary(db, job_id, tenant, settings, summaries.SummaryOptions())
    scores = [r.score for r in results if r.status == "ok" and r.score is not None]
    view = JudgingView(
        stats=batch_stats(results),
        items=items,
        page=page,
        pages=pages,
        shown=shown,
        matching=len(kept),
        summary=summary,
        charts=summary_charts(summary),
        agreement=agreement_matrix(summary.jury),
        scores=score_histogram("Scores given", scores, _scale(out.params)),
    )
    return JobDetail(job=out, judging=view)


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
    # Each model's grades (errors left out), for its score histogram.
    grades: dict[str, list[float]]


@dataclass(frozen=True)
class LeaderboardPage:
    runs: list[str]
    board: Leaderboard | None
    summary: SummaryOut | None = None
    charts: SummaryCharts | None = None
    agreement: AgreementMatrix | None = None
    histograms: list[Histogram] = field(default_factory=list)


def mtbench_runs(session: Session, tenant: str) -> list[str]:
    return jobs_repo.metadata_values(session, tenant, RUN_TAG)


def leaderboard_page(db: Database, settings: Settings, tenant: str, run: str | None) -> LeaderboardPage:
    """The tenant's MT-Bench runs and the standings of ``run`` (default: the newest run), with the charts
    of the run's summary (``app.summaries``) and each model's score histogram."""
    with db.unit_of_work() as session:
        runs = mtbench_runs(session, tenant)
        run = run or dashboard_repo.latest_metadata_value(session, tenant, RUN_TAG)
        board = run_leaderboard(session, tenant, run) if run else None
    if board is None:
        return LeaderboardPage(runs, None)
    try:
        summary = summaries.jobs_summary(
            db, tenant, [f"{RUN_TAG}:{board.run}"], settings, summaries.SummaryOptions()
        )
    except NotFound:  # the run has no judging job
        return LeaderboardPage(runs, board)
    histograms = [
        h
        for model, grades in sorted(board.grades.items())
        if (h := score_histogram(model, grades, MTBENCH_SCALE)) is not None
    ]
    return LeaderboardPage(
        runs,
        board,
        summary,
        summary_charts(summary),
        agreement_matrix(summary.jury),
        histograms,
    )


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
        grades=_grades(judged.single),
    )


def _grades(judged: list[SingleJudgment]) -> dict[str, list[float]]:
    grades: dict[str, list[float]] = {}
    for j in judged:
        if j.score != ERROR_SCORE:
            grades.setdefault(j.model, []).append(j.score)
    return grades
