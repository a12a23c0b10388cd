"""FastAPI dependencies: who is calling (from the API key) and whether the key may do this."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import keys, service
from app.auth.ratelimit import RateLimiter
from app.auth.service import Principal, Unauthorized
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
    """The caller, from its API key; 401 without a valid one, 429 over the key's rate limit (or when its
    address sent too many invalid keys). Computed once per request, on the event loop unless the key must
    be looked up."""
    authorization = request.headers.get("Authorization")
    caller = _recently_checked(state, authorization)
    if caller is None:
        caller = await asyncio.to_thread(_guarded_look_up, state, authorization, client_address(request))
    if state.limiter is not None:
        _within_rate(state.limiter, await state.limiter.wait_for_async(state.async_redis, caller.key_id))
    return caller


def authorize(state: AppState, authorization: str | None, address: str) -> Principal:
    """The principal behind an ``Authorization`` header value sent from client ``address``, within its
    key's rate limit and the address's limit of failed lookups (401, 429)."""
    caller = _recently_checked(state, authorization) or _guarded_look_up(state, authorization, address)
    within_rate(state, caller)
    return caller


def within_rate(state: AppState, caller: Principal) -> None:
    """429 when ``caller``'s key is over its rate limit (else a request's token is taken)."""
    if state.limiter is not None:
        _within_rate(state.limiter, state.limiter.wait_for(caller.key_id))


def _recently_checked(state: AppState, authorization: str | None) -> Principal | None:
    """A key checked within ``settings.auth_cache_seconds`` is not looked up again."""
    return state.principals.get(authorization) if authorization else None


def client_address(request: Request) -> str:
    """The client's address (behind a proxy: with uvicorn's --proxy-headers, the forwarded one)."""
    return request.client.host if request.client else "unknown"


def _guarded_look_up(state: AppState, authorization: str | None, address: str) -> Principal:
    """Look a well-formed key up, unless its client address made too many failed lookups lately (429,
    without touching the database); a failed lookup counts against the address. (A missing or malformed
    header costs no lookup, so it does not count.)"""
    guard = state.failed_lookups if _costs_a_lookup(authorization) else None
    if guard is not None:
        wait = guard.wait_for(address, take=False)
        if wait > 0:
            raise TooManyRequests(f"too many invalid API keys from this address; retry in {wait:.1f} s", wait)
    try:
        return _look_up(state, authorization)
    except Unauthorized:
        if guard is not None:
            guard.wait_for(address)
        raise


def _costs_a_lookup(authorization: str | None) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and keys.prefix_of(token.strip()) is not None


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
