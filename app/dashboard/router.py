"""The dashboard's pages (HTML, not part of the JSON API: left out of openapi.yaml)."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import FileResponse

from app.auth.service import Forbidden, Principal, Unauthorized
from app.core.errors import NotFound
from app.core.state import AppState, get_state
from app.dashboard import service, session
from app.dashboard.filters import ITEM_KINDS, VERDICTS, ItemFilter
from app.dashboard.rendering import HtmlRoute, page, redirect
from app.jobs import access
from app.jobs import kinds as job_kinds

router = APIRouter(prefix=session.PATH, include_in_schema=False, route_class=HtmlRoute)

_STATIC_DIR = Path(__file__).parent / "static"
_STATIC = {"dashboard.css": "text/css", "refresh.js": "text/javascript"}


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard page of this site, never another site."""
    if target and target.startswith(session.PATH) and not target.startswith("//"):
        return target
    return session.PATH


def _refresh(state: AppState, active: bool) -> int:
    """Seconds until the page reloads itself (0: it does not), while something on it may change."""
    return state.settings.dashboard_refresh_seconds if active else 0


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    if name not in _STATIC:
        raise NotFound(f"no static file {name}")
    return FileResponse(
        _STATIC_DIR / name, media_type=_STATIC[name], headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/sign-in")
def sign_in_form(
    request: Request, next: str | None = Query(default=None, max_length=2000), expired: bool = False
) -> Response:
    message = "Your key no longer works (revoked?): sign in again." if expired else None
    return page(request, "sign_in.html", {"next": _safe_next(next), "error": message})


@router.post("/sign-in", dependencies=[Depends(session.same_origin)])
def sign_in(
    request: Request,
    api_key: str = Form(max_length=200),
    next: str | None = Form(default=None, max_length=2000),
    state: AppState = Depends(get_state),
) -> Response:
    try:
        caller = session.check_key(state, request, api_key)
    except (Unauthorized, Forbidden) as exc:
        context = {"next": _safe_next(next), "error": exc.message}
        return page(request, "sign_in.html", context, status=exc.status)
    response = redirect(_safe_next(next))
    session.sign_in(state, request, response, caller)
    return response


@router.post("/sign-out", dependencies=[Depends(session.same_origin)])
def sign_out(request: Request, state: AppState = Depends(get_state)) -> Response:
    response = redirect(f"{session.PATH}/sign-in")
    session.sign_out(state, request, response)
    return response


@router.get("")
def jobs(
    request: Request,
    status: str | None = Query(default=None, max_length=32),
    kind: str | None = Query(default=None, max_length=32),
    metadata: str | None = Query(default=None, max_length=2000, description="`key=value`, comma-separated."),
    cursor: str | None = Query(default=None, max_length=500),
    state: AppState = Depends(get_state),
    caller: Principal = Depends(session.viewer),
) -> Response:
    with state.db.unit_of_work() as db_session:
        listing = service.jobs_page(
            db_session, caller.tenant, status, kind, cursor, access.visible_kinds(caller.scopes), metadata
        )
    active = any(job.status in ("queued", "running") for job in listing.jobs)
    filters = {k: v for k, v in (("status", status), ("kind", kind), ("metadata", metadata)) if v}
    context = {
        "tenant": caller.tenant,
        "jobs": listing.jobs,
        "first_url": "?" + urlencode(filters),
        "next_url": "?" + urlencode({**filters, "cursor": listing.next_cursor})
        if listing.next_cursor
        else None,
        "paged": bool(cursor),
        "status": status or "",
        "kind": kind or "",
        "metadata": metadata or "",
        "statuses": service.STATUSES,
        "kinds": job_kinds.names(),
        "refresh": _refresh(state, active),
    }
    return page(request, "jobs.html", context)


@router.get("/find")
def find(
    id: str = Query(max_length=200, description="A job's id, or its first characters."),
    state: AppState = Depends(get_state),
    caller: Principal = Depends(session.viewer),
) -> Response:
    with state.db.unit_of_work() as db_session:
        job_id = service.find_job(db_session, caller.tenant, id, access.visible_kinds(caller.scopes))
    return redirect(f"{session.PATH}/jobs/{job_id}")


@router.get("/jobs/{job_ref}")
def job(
    request: Request,
    job_ref: str,
    page_number: int = Query(default=1, alias="page", ge=1),
    only: str | None = Query(default=None, max_length=32, description="inconsistent, error or pending"),
    verdict: str | None = Query(default=None, max_length=8, description="A, B or tie"),
    state: AppState = Depends(get_state),
    caller: Principal = Depends(session.viewer),
) -> Response:
    visible = access.visible_kinds(caller.scopes)
    try:
        job_id = uuid.UUID(job_ref)
    except ValueError:
        # A short id (its first characters): the job's own page.
        with state.db.unit_of_work() as db_session:
            job_id = service.find_job(db_session, caller.tenant, job_ref, visible)
        return redirect(
            f"{session.PATH}/jobs/{job_id}" + (f"?{request.url.query}" if request.url.query else "")
        )
    shown = ItemFilter.parse(only, verdict)
    detail = service.job_detail(state.db, state.settings, job_id, caller.tenant, page_number, visible, shown)
    context = {
        "tenant": caller.tenant,
        "job": detail.job,
        "judging": detail.judging,
        "outcome": detail.outcome,
        "prompt_opt": detail.prompt_opt,
        "iterations": detail.iterations,
        "item_kinds": ITEM_KINDS,
        "verdicts": VERDICTS,
        "refresh": _refresh(state, detail.job.status in ("queued", "running")),
    }
    return page(request, "job.html", context)


@router.get("/leaderboard")
def leaderboard(
    request: Request,
    run: str | None = Query(
        default=None, max_length=512, description="The MT-Bench run's name (default: the newest run)."
    ),
    state: AppState = Depends(get_state),
    caller: Principal = Depends(session.viewer),
) -> Response:
    shown = service.leaderboard_page(state.db, state.settings, caller.tenant, run or None)
    board = shown.board
    active = board is not None and any(job.status in ("queued", "running") for job in board.jobs)
    context = {
        "tenant": caller.tenant,
        "runs": shown.runs,
        "board": board,
        "charts": shown.charts,
        "charts_summary": shown.summary,
        "agreement": shown.agreement,
        "histograms": shown.histograms,
        "refresh": _refresh(state, active),
    }
    return page(request, "leaderboard.html", context)
