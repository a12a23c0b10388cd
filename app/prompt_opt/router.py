"""HTTP routes of prompt-optimization jobs. Thin: parse, call one service function, return a schema."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.auth.dependencies import get_tenant, require
from app.core import idempotency
from app.core.errors import ERROR_RESPONSES
from app.core.state import AppState, get_state
from app.jobs.schemas import JobOut
from app.jobs.service import job_out
from app.prompt_opt import service
from app.prompt_opt.schemas import DryRunOut, PromptOptimizationRequest

router = APIRouter(prefix="/v1/jobs", tags=["prompt optimization"], dependencies=[Depends(require("jobs"))])


@router.post(
    "/prompt-optimization",
    operation_id="create_prompt_optimization_job",
    summary="Optimize a prompt with ProTeGi (textual gradients, beam search, bandit selection)",
    status_code=202,
    response_model=JobOut,
    responses={
        200: {
            "model": DryRunOut,
            "description": "`dry_run`: the projected calls and tokens; nothing recorded.",
        },
        202: {"model": JobOut, "description": "The job is accepted; results at GET /v1/jobs/{id}/results."},
        **ERROR_RESPONSES,
    },
)
def create_prompt_optimization_job(
    body: PromptOptimizationRequest,
    idempotency_key: str | None = idempotency.HEADER,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> JSONResponse:
    idem = idempotency.of(idempotency_key, "POST /v1/jobs/prompt-optimization", body)
    with state.db.unit_of_work() as session:
        outcome = service.submit(session, state.settings, state.queue, body, tenant, idem)
        if isinstance(outcome, DryRunOut):
            return JSONResponse(outcome.model_dump(mode="json"), status_code=200)
        out = job_out(outcome)
    return JSONResponse(out.model_dump(mode="json"), status_code=202)
