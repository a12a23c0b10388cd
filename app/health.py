"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import shutil

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.core.config import Settings
from app.core.state import AppState, get_state
from app.models import repository as models_repo
from app.models.availability import folder_problem, load_failures

_MIB = 1024 * 1024

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(
        description="`ok`; `degraded` when a model cannot be served (its jobs are refused, other models' "
        "run); `unavailable` when a dependency is unreachable or the data directory's disk is nearly full."
    )
    checks: dict[str, str] = Field(
        default_factory=dict,
        description="Each dependency (`database`, `queue`, `disk`, `models`): `ok` or the problem.",
    )


@router.get("/healthz", operation_id="healthz", summary="The process is alive", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


def _disk_problem(settings: Settings) -> str | None:
    """Whether the data directory's disk (the embedded database, models, trainings) is nearly full."""
    if settings.min_free_disk_mb <= 0:
        return None
    where = next(p for p in (settings.data_dir, *settings.data_dir.parents) if p.exists())
    free = shutil.disk_usage(where).free
    if free >= settings.min_free_disk_mb * _MIB:
        return None
    return f"{free // _MIB} MiB free under {where}; at least {settings.min_free_disk_mb} MiB wanted"


def _model_problems(state: AppState) -> list[str]:
    """Operator models that cannot be served: what their workers reported, and folders missing from this
    machine's disk (models trained for a tenant are not named here)."""
    problems = [f"{f.queue}: {f.describe()}" for f in load_failures(state.redis)]
    with state.db.reading() as session:
        for record in models_repo.list_models(session):
            problem = folder_problem(record.artifact_path if record.backend != "openai" else None)
            if record.owner is None and problem is not None:
                problems.append(f"model '{record.name}': {problem}")
    return problems


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="The database and the queue are reachable, the disk has room, the models can be served",
    response_model=Health,
    responses={
        503: {"model": Health, "description": "A dependency is unreachable, or the disk is nearly full"}
    },
)
async def readyz(state: AppState = Depends(get_state)) -> JSONResponse:
    checks: dict[str, str] = {}

    def ping_db() -> None:
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    for name, probe in (("database", ping_db), ("queue", state.redis.ping)):
        try:
            await asyncio.wait_for(asyncio.to_thread(probe), timeout=5)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; report it
            checks[name] = f"{type(exc).__name__}: {exc}"[:300]
    low_disk = _disk_problem(state.settings)
    checks["disk"] = f"low: {low_disk}" if low_disk else "ok"
    ok = all(v == "ok" for v in checks.values())
    degraded = False
    if ok:
        problems = await asyncio.wait_for(asyncio.to_thread(_model_problems, state), timeout=5)
        checks["models"] = "; ".join(problems)[:2000] if problems else "ok"
        degraded = bool(problems)
    status = "unavailable" if not ok else "degraded" if degraded else "ok"
    body = Health(status=status, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
