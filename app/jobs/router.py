"""HTTP routes of job resources (every kind)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query

from app.auth.dependencies import get_tenant, require
from app.core.errors import ERROR_RESPONSES
from app.core.state import AppState, get_state
from app.jobs import service
from app.jobs.schemas import JobKind, JobOut, JobPage, JobStatus, ResultPage
from app.prompt_opt.schemas import PromptOptimizationResults
from app.self_reward.schemas import SelfRewardResults

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(require("judge", "jobs"))])

LIMIT = Query(default=100, ge=1, le=1000, description="Page size.")
CURSOR = Query(default=None, max_length=500, description="`next_cursor` of the previous page.")


@router.get(
    "",
    operation_id="list_jobs",
    summary="List jobs, newest first",
    response_model=JobPage,
    responses=ERROR_RESPONSES,
)
def list_jobs(
    status: JobStatus | None = Query(default=None, description="Only jobs in this status."),
    kind: JobKind | None = Query(default=None, description="Only jobs of this kind."),
    model: str | None = Query(default=None, max_length=200, description="Only jobs for this model."),
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> JobPage:
    with state.db.unit_of_work() as session:
        return service.list_jobs(session, tenant, limit, cursor, status, kind, model)


@router.get(
    "/{job_id}",
    operation_id="get_job",
    summary="A job's status and progress",
    response_model=JobOut,
    responses=ERROR_RESPONSES,
)
def get_job(
    job_id: uuid.UUID, state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)
) -> JobOut:
    with state.db.unit_of_work() as session:
        return service.job_out(service.get_job(session, job_id, tenant))


@router.get(
    "/{job_id}/results",
    operation_id="get_job_results",
    summary="A job's results: judging items in item order (paged), or a long job's outcome",
    response_model=ResultPage | PromptOptimizationResults | SelfRewardResults,
    responses=ERROR_RESPONSES,
)
def get_results(
    job_id: uuid.UUID,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> ResultPage | PromptOptimizationResults | SelfRewardResults:
    with state.db.unit_of_work() as session:
        return service.results_page(session, job_id, tenant, limit, cursor)


@router.post(
    "/{job_id}/cancel",
    operation_id="cancel_job",
    summary="Cancel a job (queued: at once; running: at the worker's next check)",
    response_model=JobOut,
    responses=ERROR_RESPONSES,
)
def cancel_job(
    job_id: uuid.UUID, state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)
) -> JobOut:
    with state.db.unit_of_work() as session:
        return service.job_out(service.cancel(session, state.queue, job_id, tenant))
