"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.core.state import AppState, get_state

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(description="`ok`, or `unavailable` when a dependency is unreachable.")
    checks: dict[str, str] = Field(default_factory=dict, description="Each dependency: `ok` or the error.")


@router.get("/healthz", operation_id="healthz", summary="The process is alive", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="The database and the queue are reachable",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is unreachable"}},
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
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
