"""HTTP routes of the model registry. Thin: parse, call one service function, return a schema."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from app.auth import keys
from app.auth.dependencies import get_tenant, principal, require
from app.auth.service import Principal
from app.core.errors import ERROR_RESPONSES
from app.core.state import AppState, get_state
from app.models import service
from app.models.schemas import ModelDetail, ModelList

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[Depends(require("judge", "jobs"))])


@router.get(
    "",
    operation_id="list_models",
    summary="Models the service can judge with",
    response_model=ModelList,
    responses=ERROR_RESPONSES,
)
def list_models(state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)) -> ModelList:
    with state.db.unit_of_work() as session:
        return service.list_models(session, state.redis, state.settings.default_model, tenant)


@router.get(
    "/{model:path}",
    operation_id="get_model",
    summary="A model: lineage, artifact location, training metrics",
    response_model=ModelDetail,
    responses=ERROR_RESPONSES,
)
def get_model(
    model: str = Path(max_length=200, description="The model's id or name."),
    state: AppState = Depends(get_state),
    caller: Principal = Depends(principal),
) -> ModelDetail:
    operator = keys.allows(caller.scopes, ("admin",))
    with state.db.unit_of_work() as session:
        return service.model_detail(
            session, state.redis, model, state.settings.default_model, caller.tenant, operator
        )
