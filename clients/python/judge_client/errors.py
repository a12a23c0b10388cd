"""Exceptions of the client. Every one is a ``JudgeError``; those from an HTTP answer carry the status
and the service's error body (``{"error": {"type", "message", "field"?, "details"?}}``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judge_client.types import Job


class JudgeError(Exception):
    """Base class of the client's errors."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.field = field
        self.details = details or []


class InvalidArgument(JudgeError, ValueError):
    """A call's arguments are wrong (an empty batch, an unknown option, a malformed item or URL): raised
    before any request is sent. Also a ``ValueError``."""


class BadRequest(JudgeError):
    """400, 413 or 422: the request is invalid; ``field`` names the field at fault, ``details`` lists
    every problem when there were several."""


class Unauthorized(JudgeError):
    """401: missing, invalid or revoked API key."""


class Forbidden(JudgeError):
    """403: the API key lacks the scope this call needs."""


class NotFound(JudgeError):
    """404: no such job (or it belongs to another tenant), model or template."""


class Conflict(JudgeError):
    """409: e.g. cancelling a job that already ended, or an Idempotency-Key reused with another body."""


class RateLimited(JudgeError):
    """429 after the retries ran out: the key's rate limit or the tenant's active-job cap."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(JudgeError):
    """5xx: the service failed (after the retries, for 502, 503 and 504)."""


class Unavailable(ServerError):
    """502, 503 or 504 after the retries ran out: the service or a server it depends on is down."""


class ConnectionFailed(JudgeError):
    """The service could not be reached (connection refused, DNS, network timeout) after the retries."""


class JudgeTimeout(JudgeError):
    """Waiting for a job ran past its timeout; ``job`` is the job as last seen (it goes on running)."""

    def __init__(self, message: str, job: Job) -> None:
        super().__init__(message)
        self.job = job


class JobFailed(JudgeError):
    """The job ended ``failed`` or ``cancelled`` where a result was expected; ``job`` says why."""

    def __init__(self, job: Job) -> None:
        reason = f": {job.error}" if job.error else ""
        super().__init__(f"job {job.id} {job.status}{reason}")
        self.job = job


_BY_STATUS: dict[int, type[JudgeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: BadRequest,
    429: RateLimited,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_from_response(status: int, body: bytes, headers: dict[str, str]) -> JudgeError:
    """The exception for an error answer: its class from the status, its message from the body."""
    error: dict[str, Any] = {}
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
    elif isinstance(parsed, dict) and parsed.get("detail") is not None:
        error = {"message": str(parsed["detail"])}
    detail = str(error.get("message") or body.decode("utf-8", "replace").strip()[:500] or "no detail")
    message = f"HTTP {status}: {detail}"
    details = error.get("details")
    kwargs: dict[str, Any] = {
        "status": status,
        "type": error.get("type") if isinstance(error.get("type"), str) else None,
        "field": error.get("field") if isinstance(error.get("field"), str) else None,
        "details": details if isinstance(details, list) else None,
    }
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else JudgeError)
    if cls is RateLimited:
        return RateLimited(message, retry_after=parse_retry_after(headers.get("retry-after")), **kwargs)
    return cls(message, **kwargs)
