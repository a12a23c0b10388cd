"""Who is looking at the dashboard. Browsers cannot send ``Authorization: Bearer``, so the sign-in form
takes an API key and keeps it in an HttpOnly, SameSite=Strict cookie; every page checks it again with
the API's own authentication, so a revoked key signs the browser out."""

from __future__ import annotations

from fastapi import Depends, Request, Response

from app.auth import service as auth_service
from app.auth.dependencies import authorize
from app.auth.service import Forbidden, Principal, Unauthorized
from app.core.state import AppState, get_state

COOKIE = "judge_dashboard_key"
PATH = "/dashboard"
# The scopes that may read jobs through the API (GET /v1/jobs).
READ_SCOPES = ("judge", "jobs")


class SignInRequired(Exception):
    """No valid key in the cookie: the page sends the browser to the sign-in form (``expired``: the key
    in the cookie stopped working, e.g. it was revoked)."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("sign in")
        self.expired = expired


def check_key(state: AppState, key: str) -> Principal:
    """The principal behind a key typed into the sign-in form; Unauthorized (401) or Forbidden (403)."""
    caller = authorize(state, f"Bearer {key.strip()}")
    auth_service.check_scope(caller, READ_SCOPES)
    return caller


def viewer(request: Request, state: AppState = Depends(get_state)) -> Principal:
    """The signed-in principal (a dependency of every page but the sign-in form)."""
    key = request.cookies.get(COOKIE)
    if not key:
        raise SignInRequired()
    try:
        return check_key(state, key)
    except Unauthorized as exc:
        raise SignInRequired(expired=True) from exc


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (a forged sign-in or sign-out), as the browser reports it."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise Forbidden("forms of the dashboard are only accepted from the dashboard itself")


def remember(request: Request, response: Response, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key.strip(),
        path=PATH,
        httponly=True,
        samesite="strict",
        # Secure whenever the browser reached us over https (behind a proxy: with uvicorn's
        # --proxy-headers, which trusts X-Forwarded-Proto from its forwarded-allow-ips).
        secure=request.url.scheme == "https",
    )


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
