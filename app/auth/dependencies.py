"""FastAPI dependencies: who is calling (from the API key) and whether the key may do this."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import service
from app.auth.ratelimit import RateLimiter
from app.auth.service import Principal
from app.core.errors import TooManyRequests
from app.core.state import AppState, get_state

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (`judge keys create`), sent as `Authorization: Bearer <key>`.",
)


async def principal(
    request: Request,
    # Declares the scheme in the OpenAPI document; the raw header is read below, so that a malformed one
    # gets its own message (HTTPBearer would only say "missing").
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    state: AppState = Depends(get_state),
) -> Principal:
    """The caller, from its API key; 401 without a valid one, 429 over the key's rate limit. Computed
    once per request, on the event loop unless the key must be looked up."""
    authorization = request.headers.get("Authorization")
    caller = _recently_checked(state, authorization)
    if caller is None:
        caller = await asyncio.to_thread(_look_up, state, authorization)
    if state.limiter is not None:
        _within_rate(state.limiter, await state.limiter.wait_for_async(state.async_redis, caller.key_id))
    return caller


def authorize(state: AppState, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization`` header value, within its key's rate limit (401, 429)."""
    caller = _recently_checked(state, authorization) or _look_up(state, authorization)
    if state.limiter is not None:
        _within_rate(state.limiter, state.limiter.wait_for(caller.key_id))
    return caller


def _recently_checked(state: AppState, authorization: str | None) -> Principal | None:
    """A key checked within ``settings.auth_cache_seconds`` is not looked up again."""
    return state.principals.get(authorization) if authorization else None


def _look_up(state: AppState, authorization: str | None) -> Principal:
    with state.db.unit_of_work() as session:
        caller = service.authenticate(session, authorization)
    state.principals.put(authorization or "", caller)
    return caller


def _within_rate(limiter: RateLimiter, wait: float) -> None:
    if wait > 0:
        raise TooManyRequests(
            f"rate limit of {limiter.rate:g} requests/s for this API key reached; retry in {wait:.1f} s",
            wait,
        )


async def get_tenant(caller: Principal = Depends(principal)) -> str:
    """The caller's tenant: every query of tenant-owned data is scoped by it."""
    return caller.tenant


def require(*scopes: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through keys holding any of ``scopes`` (or ``admin``); 403 otherwise."""

    async def check(caller: Principal = Depends(principal)) -> Principal:
        service.check_scope(caller, scopes)
        return caller

    return check
