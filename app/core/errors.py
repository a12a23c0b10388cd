"""One error shape for every 4xx/5xx: ``{"error": {"type", "message", "field"?}}``."""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Sequence
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable error kind, e.g. `validation_error`, `not_found`.")
    message: str = Field(description="What is wrong, for a human.")
    field: str | None = Field(
        default=None, description="The offending request field, e.g. `items[3].answer_a`."
    )
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Every validation problem found, when there were several."
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """Raised by services for errors the caller can fix; rendered with the one error shape."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.field = field
        self.headers = headers


class NotFound(ApiError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(404, "not_found", message, field)


class InvalidInput(ApiError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(422, "validation_error", message, field)


class TooManyRequests(ApiError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(
            429, "rate_limited", message, headers={"Retry-After": str(max(1, math.ceil(retry_after)))}
        )


class Conflict(ApiError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(409, "conflict", message, field)


def format_loc(loc: Sequence[int | str]) -> str | None:
    """``("body", "items", 3, "answer_a")`` → ``items[3].answer_a``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-after", "function-before", "function-wrap")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or None


def _error_body(
    type_: str, message: str, field: str | None = None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return ErrorResponse(
        error=ErrorDetail(type=type_, message=message, field=field, details=details)
    ).model_dump(exclude_none=True)


def _error_field(error: Any) -> str | None:
    if error.get("type") == "json_invalid":
        return None  # its loc is a character offset into the body, not a field
    loc = list(error.get("loc", ()))
    # Item validators name the field at fault in the error context.
    ctx = error.get("ctx") or {}
    if isinstance(ctx, dict) and isinstance(ctx.get("field"), str):
        loc.append(ctx["field"])
    return format_loc(loc)


def _clean_message(error: Any) -> str:
    if error.get("type") == "missing" and list(error.get("loc", ())) == ["body"]:
        return "the request has no body; send a JSON object (Content-Type: application/json)"
    return str(error.get("msg", "")).removeprefix("Value error, ")


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        _error_body(exc.type, exc.message, exc.field), status_code=exc.status, headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    details = [{"field": _error_field(e), "message": _clean_message(e)} for e in errors]
    first = details[0] if details else {"field": None, "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
    if len(details) > 1:
        message += f" (and {len(details) - 1} more problem(s))"
    return JSONResponse(
        _error_body("validation_error", message, first["field"], details if len(details) > 1 else None),
        status_code=422,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI could not read the body as JSON at all (e.g. it is not UTF-8): the same 422 as a JSON
        # syntax error, saying why, rather than a bare 400.
        message = f"the request body is not valid JSON: {exc.__cause__}"[:300]
        return JSONResponse(_error_body("validation_error", message), status_code=422)
    type_ = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    return JSONResponse(_error_body(type_, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


# A server the API depends on is down: the client should retry, not give up (503, not 500).
_UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


# Postgres's disk_full condition, and SQLite's SQLITE_FULL ("database or disk is full").
_PG_DISK_FULL = "53100"
_SQLITE_FULL = 13


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an error that led to it, says that a disk is full (the server's own, or the
    database's)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        driver_error = getattr(seen, "orig", None)  # what SQLAlchemy wrapped
        if getattr(driver_error, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if getattr(driver_error, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    if _disk_full(exc):
        log.error("disk full: %s", exc)
        return JSONResponse(
            _error_body("unavailable", "the server's disk is full; retry later"),
            status_code=503,
            headers={"Retry-After": "60"},
        )
    if isinstance(exc, _UNAVAILABLE):
        which = "database" if isinstance(exc, sqlalchemy.exc.DBAPIError) else "queue"
        log.warning("%s unreachable: %s", which, exc)
        return JSONResponse(
            _error_body("unavailable", f"the {which} is unreachable; retry shortly"),
            status_code=503,
            headers={"Retry-After": "5"},
        )
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(_error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, invalid or revoked API key"},
    403: {"model": ErrorResponse, "description": "The API key lacks the scope this route needs"},
    404: {"model": ErrorResponse, "description": "Not found"},
    409: {
        "model": ErrorResponse,
        "description": "Conflict (e.g. an Idempotency-Key reused with another body)",
    },
    413: {"model": ErrorResponse, "description": "Request body too large"},
    422: {"model": ErrorResponse, "description": "Invalid request"},
    429: {
        "model": ErrorResponse,
        "description": "Rate limit or the tenant's active-job cap reached; see Retry-After",
    },
}
