"""HTTP routes of webhook deliveries. Thin: parse, call one service function, return a schema."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from app.auth.dependencies import get_tenant, require
from app.core.errors import ERROR_RESPONSES
from app.core.state import AppState, get_state
from app.jobs import access
from app.webhooks import service
from app.webhooks.schemas import DeliveryList

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(require("judge", "jobs"))])


@router.get(
    "/{job_id}/deliveries",
    operation_id="list_job_deliveries",
    summary="A job's webhook deliveries: every attempt's time, status code, error and next retry",
    response_model=DeliveryList,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(access.job_in_scope)],
)
def list_job_deliveries(
    job_id: uuid.UUID, state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)
) -> DeliveryList:
    with state.db.unit_of_work() as session:
        return service.deliveries(session, job_id, tenant)
