"""HTTP routes of the model registry."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.core.state import AppState, get_state
from app.models import repository
from app.models.schemas import ModelList, ModelOut

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get(
    "", operation_id="list_models", summary="Models the service can judge with", response_model=ModelList
)
def list_models(state: AppState = Depends(get_state)) -> ModelList:
    with state.db.unit_of_work() as session:
        return ModelList(
            models=[
                ModelOut(
                    id=m.id,
                    name=m.name,
                    backend=m.backend,
                    parent_id=m.parent_id,
                    job_id=m.job_id,
                    iteration=m.iteration,
                    metrics=m.metrics,
                    default=m.name == state.settings.default_model,
                    created_at=m.created_at,
                )
                for m in repository.list_models(session)
            ]
        )
