"""Who is looking at the dashboard. Browsers cannot send ``Authorization: Bearer``, so the sign-in form
takes an API key, checks it with the API's own authentication, and opens a server-side session: the
browser keeps only a random session id, in an HttpOnly, SameSite=Strict cookie. Every page looks the
session up, so signing out or revoking the key signs the browser out at once."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response

from app.auth import service as auth_service
from app.auth import sessions
from app.auth.dependencies import authorize, client_address, within_rate
from app.auth.service import Forbidden, Principal
from app.core.state import AppState, get_state

COOKIE = "judge_dashboard_session"
PATH = "/dashboard"
# The scopes that may read jobs through the API (GET /v1/jobs).
READ_SCOPES = ("judge", "jobs")


class SignInRequired(Exception):
    """No live session in the cookie: the page sends the browser to the sign-in form (``expired``: the
    cookie's session ended, e.g. its key was revoked)."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("sign in")
        self.expired = expired


def check_key(state: AppState, request: Request, key: str) -> Principal:
    """The principal behind a key typed into the sign-in form; Unauthorized (401), Forbidden (403) or
    TooManyRequests (429: the address tried too many wrong keys)."""
    caller = authorize(state, f"Bearer {key.strip()}", client_address(request))
    auth_service.check_scope(caller, READ_SCOPES)
    return caller


def viewer(request: Request, state: AppState = Depends(get_state)) -> Principal:
    """The signed-in principal (a dependency of every page but the sign-in form)."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInRequired()
    with state.db.unit_of_work() as session:
        caller = sessions.resolve(session, token)
    if caller is None:
        raise SignInRequired(expired=True)
    within_rate(state, caller)
    auth_service.check_scope(caller, READ_SCOPES)
    return caller


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (a forged sign-in or sign-out). A browser says where a
    form comes from in ``Sec-Fetch-Site`` and ``Origin``; a request that says neither is refused too,
    since nothing then shows it came from the dashboard."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is None and origin is None:
        raise Forbidden("forms of the dashboard need an Origin header (browsers send one)")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("forms of the dashboard are only accepted from the dashboard itself")
    if origin is not None and not _is_own_origin(request, origin):
        raise Forbidden("forms of the dashboard are only accepted from the dashboard itself")


def _is_own_origin(request: Request, origin: str) -> bool:
    """Whether ``origin`` is this site as the browser reached it (scheme, host and port)."""
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def sign_in(state: AppState, request: Request, response: Response, caller: Principal) -> None:
    """Open a session of ``caller``'s key and hand its id to the browser."""
    lifetime = timedelta(hours=state.settings.dashboard_session_hours)
    with state.db.unit_of_work() as session:
        token = sessions.open_session(session, caller, lifetime)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        path=PATH,
        httponly=True,
        samesite="strict",
        # Secure whenever the browser reached us over https (behind a proxy: with uvicorn's
        # --proxy-headers, which trusts X-Forwarded-Proto from its forwarded-allow-ips).
        secure=request.url.scheme == "https",
    )


def sign_out(state: AppState, request: Request, response: Response) -> None:
    """End the browser's session (its id stops working everywhere) and clear the cookie."""
    token = request.cookies.get(COOKIE)
    if token:
        with state.db.unit_of_work() as session:
            sessions.close(session, token)
    forget(response)


def forget(response: Response) -> None:
    """Clear the session cookie."""
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
