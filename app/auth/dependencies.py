"""FastAPI dependencies: who is calling (from the API key) and whether the key may do this."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import service
from app.auth.service import Principal
from app.core.errors import TooManyRequests
from app.core.state import AppState, get_state

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (`judge keys create`), sent as `Authorization: Bearer <key>`.",
)


def principal(
    request: Request,
    # Declares the scheme in the OpenAPI document; the raw header is read below, so that a malformed one
    # gets its own message (HTTPBearer would only say "missing").
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    state: AppState = Depends(get_state),
) -> Principal:
    """The caller, from its API key; 401 without a valid one, 429 over the key's rate limit. Computed
    once per request."""
    return authorize(state, request.headers.get("Authorization"))


def authorize(state: AppState, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization`` header value, within its key's rate limit (401, 429)."""
    with state.db.unit_of_work() as session:
        caller = service.authenticate(session, authorization)
    if state.limiter is not None:
        wait = state.limiter.wait_for(caller.key_id)
        if wait > 0:
            raise TooManyRequests(
                f"rate limit of {state.limiter.rate:g} requests/s for this API key reached; "
                f"retry in {wait:.1f} s",
                wait,
            )
    return caller


def get_tenant(caller: Principal = Depends(principal)) -> str:
    """The caller's tenant: every query of tenant-owned data is scoped by it."""
    return caller.tenant


def require(*scopes: str) -> Callable[[Principal], Principal]:
    """A dependency that lets through keys holding any of ``scopes`` (or ``admin``); 403 otherwise."""

    def check(caller: Principal = Depends(principal)) -> Principal:
        service.check_scope(caller, scopes)
        return caller

    return check
