"""HTTP routes of self-reward jobs. Thin: parse, call one service function, return a schema."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.auth.dependencies import get_tenant, require
from app.core import idempotency
from app.core.errors import ERROR_RESPONSES
from app.core.state import AppState, get_state
from app.jobs.schemas import JobOut
from app.jobs.service import job_out
from app.self_reward import service
from app.self_reward.schemas import SelfRewardDryRunOut, SelfRewardRequest

router = APIRouter(prefix="/v1/jobs", tags=["self-reward"], dependencies=[Depends(require("jobs"))])


@router.post(
    "/self-reward",
    operation_id="create_self_reward_job",
    summary="Run the Self-Rewarding Language Models loop (self-instruct, self-judging, DPO)",
    status_code=202,
    response_model=JobOut,
    responses={
        200: {
            "model": SelfRewardDryRunOut,
            "description": "`dry_run`: the projected calls, tokens and training steps; nothing recorded.",
        },
        202: {"model": JobOut, "description": "The job is accepted; results at GET /v1/jobs/{id}/results."},
        **ERROR_RESPONSES,
    },
)
def create_self_reward_job(
    body: SelfRewardRequest,
    idempotency_key: str | None = idempotency.HEADER,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> JSONResponse:
    idem = idempotency.of(idempotency_key, "POST /v1/jobs/self-reward", body)
    with state.db.unit_of_work() as session:
        outcome = service.submit(session, state.settings, state.queue, body, tenant, idem)
        if isinstance(outcome, SelfRewardDryRunOut):
            return JSONResponse(outcome.model_dump(mode="json"), status_code=200)
        out = job_out(outcome)
    return JSONResponse(out.model_dump(mode="json"), status_code=202)
