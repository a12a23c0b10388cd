"""HTTP routes of job resources (every kind)."""

from __future__ import annotations

import uuid
from typing import Literal, Union, get_args

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from app.auth.dependencies import get_tenant, principal, require
from app.auth.service import Principal
from app.core.errors import ERROR_RESPONSES
from app.core.state import AppState, get_state
from app.jobs import access, event_stream, service, sse
from app.jobs.events import EventName
from app.jobs.schemas import JobKind, JobOut, JobPage, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(require("judge", "jobs"))])

LIMIT = Query(default=100, ge=1, le=1000, description="Page size.")
CURSOR = Query(default=None, max_length=500, description="`next_cursor` of the previous page.")
# The routes that take a job id: a key reaches only the jobs of the kinds its scopes create.
IN_SCOPE = [Depends(access.job_in_scope)]


@router.get(
    "",
    operation_id="list_jobs",
    summary="List jobs, newest first",
    description="Only jobs of the kinds the key's scopes create: judging jobs with `judge`, "
    "prompt-optimization and self-reward jobs with `jobs` (`admin`: every kind).",
    response_model=JobPage,
    responses=ERROR_RESPONSES,
)
def list_jobs(
    status: JobStatus | None = Query(default=None, description="Only jobs in this status."),
    kind: JobKind | None = Query(
        default=None,
        max_length=64,
        description="Only jobs of this kind (`kind` of a job, e.g. `judge_pairwise`).",
    ),
    model: str | None = Query(default=None, max_length=200, description="Only jobs for this model."),
    metadata: list[str] | None = Query(
        default=None,
        max_length=32,
        description="Only jobs whose metadata has this `key:value` (repeat it: every one must match).",
    ),
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    state: AppState = Depends(get_state),
    caller: Principal = Depends(principal),
) -> JobPage:
    visible = access.visible_kinds(caller.scopes)
    with state.db.unit_of_work() as session:
        return service.list_jobs(
            session, caller.tenant, limit, cursor, status, kind, model, metadata, visible
        )


@router.get(
    "/{job_id}",
    operation_id="get_job",
    summary="A job's status and progress",
    response_model=JobOut,
    responses=ERROR_RESPONSES,
    dependencies=IN_SCOPE,
)
def get_job(
    job_id: uuid.UUID, state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)
) -> JobOut:
    with state.db.unit_of_work() as session:
        return service.job_out(service.get_job(session, job_id, tenant))


def get_results(
    job_id: uuid.UUID,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    status: Literal["pending", "ok", "error"] | None = Query(
        default=None,
        description="Judging jobs: only items in this state (`error`: the failed items, with causes).",
    ),
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> BaseModel:
    with state.db.unit_of_work() as session:
        return service.results_page(session, job_id, tenant, limit, cursor, status)


def add_results_route(results_models: tuple[type[BaseModel], ...]) -> None:
    """Serve ``GET /v1/jobs/{id}/results``, answering with one of the registered kinds' results models
    (called once the kinds are registered; again is a no-op)."""
    if any(getattr(route, "name", None) == "get_results" for route in router.routes):
        return
    router.add_api_route(
        "/{job_id}/results",
        get_results,
        methods=["GET"],
        operation_id="get_job_results",
        summary="A job's results: judging items in item order (paged), or a long job's outcome",
        response_model=Union[results_models],  # noqa: UP007 - a union built from the registry
        responses=ERROR_RESPONSES,
        name="get_results",
        dependencies=IN_SCOPE,
    )


@router.post(
    "/{job_id}/cancel",
    operation_id="cancel_job",
    summary="Cancel a job (queued: at once; running: within seconds)",
    description="A queued job ends `cancelled` at once. For a running job the answer shows it still "
    "`running`, with `cancel_requested_at` set: its waiting requests leave the model's scheduler, its "
    "rows in a running engine batch stop at the next decode step, a training process of the job is "
    "stopped, work already committed is kept, and the job shows `cancelled` within seconds. Cancelling a "
    "cancelled job changes nothing; an ended one is a conflict (409).",
    response_model=JobOut,
    responses=ERROR_RESPONSES,
    dependencies=IN_SCOPE,
)
def cancel_job(
    job_id: uuid.UUID, state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)
) -> JobOut:
    with state.db.unit_of_work() as session:
        return service.job_out(service.cancel(session, state.queue, job_id, tenant))


EVENTS_DESCRIPTION = """Server-Sent Events, one per change of the job, until it ends:

- `state`: the job as it is now (the `GET /v1/jobs/{id}` fields but `params`), sent first, and again
  whenever the server cannot replay what a resuming client missed;
- `status`: `{"status": "running", "attempts": n}`, or `{"status": "queued", "error": ...}` when the job
  goes back to the queue for another attempt;
- `progress`: `{"done": n, "total": m}`;
- `stage`: `{"stage": "round 2/6: select"}` (prompt optimization), `"iteration 1/2: judgments"`
  (self-reward), `"judging"` ...;
- `end`: `{"status": "succeeded" | "failed" | "cancelled", "error", "progress", "finished_at"}`, the
  last event: the server then closes the stream.

Data is JSON. Every event has an `id:`; reconnecting with `Last-Event-ID` resumes after it (browsers'
`EventSource` does this by itself). Comment lines (`: keep-alive`) come every 15 s while nothing happens."""


@router.get(
    "/{job_id}/events",
    operation_id="stream_job_events",
    summary="Follow a job live: status, progress and stage changes as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": EVENTS_DESCRIPTION,
            # One event, as Open API 3.2's `itemSchema` (FastAPI's own event streams declare theirs so):
            # a `schema` here reads, to Open API 3.1 tools, as the schema of each event, not a string.
            "content": {
                sse.MEDIA_TYPE: {
                    "itemSchema": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "event": {"type": "string", "enum": list(get_args(EventName))},
                            "data": {"type": "string", "contentMediaType": "application/json"},
                            "retry": {"type": "integer", "minimum": 0},
                        },
                    }
                }
            },
        },
        204: {
            "description": "Resuming (`Last-Event-ID`) after the job's `end`: nothing more will come "
            "(an `EventSource` stops reconnecting)."
        },
        **ERROR_RESPONSES,
    },
    dependencies=IN_SCOPE,
)
async def stream_job_events(
    job_id: uuid.UUID,
    last_event_id: str | None = Header(
        default=None,
        alias="Last-Event-ID",
        pattern=r"^\d{1,20}-\d{1,20}$",
        description="The `id` of the last event received: the stream resumes after it.",
    ),
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> Response:
    opening = await event_stream.open_stream(state.db, state.async_redis, job_id, tenant, last_event_id)
    if opening is None:
        return Response(status_code=204)
    events = event_stream.follow(
        state.db, state.async_redis, job_id, tenant, opening, state.settings.events_keepalive_seconds
    )
    # No caching, and no buffering by proxies (nginx honours X-Accel-Buffering).
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type=sse.MEDIA_TYPE, headers=headers)
