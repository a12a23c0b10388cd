"""HTTP routes of judging and templates. Thin: parse, call one service function, return a schema."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from app.auth.dependencies import get_tenant, require
from app.core import idempotency
from app.core.errors import ERROR_RESPONSES
from app.core.state import AppState, get_state
from app.jobs.schemas import JobOut
from app.judging import service
from app.judging.schemas import PairwiseRequest, SingleRequest, TemplateIn, TemplateList, TemplateOut
from app.judging.template_catalog import list_all_templates, template_out

router = APIRouter(prefix="/v1", tags=["judging"], dependencies=[Depends(require("judge"))])

WAIT = Query(
    default=None,
    ge=0,
    le=3600,
    description="Hold the request up to this many seconds for the job to end: 200 with the results if it "
    "ends in time, else 202 with the job (capped by the server's maximum wait).",
)
_JOB_RESPONSES = {
    200: {"model": JobOut, "description": "The job ended within `wait`; `results` holds every item."},
    202: {"model": JobOut, "description": "The job is accepted (queued or running)."},
    **ERROR_RESPONSES,
}


def _respond(ended: bool, job: JobOut) -> JSONResponse:
    return JSONResponse(job.model_dump(mode="json"), status_code=200 if ended else 202)


@router.post(
    "/judgments/pairwise",
    operation_id="judge_pairwise",
    summary="Judge pairs of answers (A, B or tie)",
    status_code=202,
    response_model=JobOut,
    responses=_JOB_RESPONSES,
)
async def judge_pairwise(
    body: PairwiseRequest,
    wait: float | None = WAIT,
    idempotency_key: str | None = idempotency.HEADER,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> JSONResponse:
    idem = idempotency.of(idempotency_key, "POST /v1/judgments/pairwise", body)
    return _respond(*await service.submit_and_wait(state, "pairwise", body, wait, tenant, idem))


@router.post(
    "/judgments/single",
    operation_id="judge_single",
    summary="Grade single answers on a scale",
    status_code=202,
    response_model=JobOut,
    responses=_JOB_RESPONSES,
)
async def judge_single(
    body: SingleRequest,
    wait: float | None = WAIT,
    idempotency_key: str | None = idempotency.HEADER,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> JSONResponse:
    idem = idempotency.of(idempotency_key, "POST /v1/judgments/single", body)
    return _respond(*await service.submit_and_wait(state, "single", body, wait, tenant, idem))


@router.get(
    "/templates",
    operation_id="list_templates",
    summary="List built-in and registered templates",
    response_model=TemplateList,
    responses=ERROR_RESPONSES,
    tags=["templates"],
)
def list_templates(state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)) -> TemplateList:
    with state.db.unit_of_work() as session:
        return list_all_templates(session, tenant)


@router.post(
    "/templates",
    operation_id="create_template",
    summary="Register a custom template (a new version if the name exists)",
    status_code=201,
    response_model=TemplateOut,
    responses=ERROR_RESPONSES,
    tags=["templates"],
)
def create_template(
    body: TemplateIn, state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)
) -> TemplateOut:
    with state.db.unit_of_work() as session:
        return template_out(service.register_template(session, body, owner=tenant))
