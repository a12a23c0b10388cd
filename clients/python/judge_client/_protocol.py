"""The client's I/O-free core: an operation is a generator ("flow") that yields steps — send this
request, sleep this long, hand this value to the caller, open an event stream and read its next event —
and receives each step's reply. The sync and async clients only drive flows (``Judge._run`` and
``AsyncJudge._run`` carry out each step), so every request, retry, poll, page and stream is written
once, here and in ``_flows.py``."""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from judge_client.errors import ConnectionFailed, error_from_response, parse_retry_after

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 502, 503, 504})

Param = str | int | float | list[str]  # a list repeats the query parameter


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    params: dict[str, Param] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds added to the client's read timeout (a request that asks the server to wait).
    extra_timeout: float = 0.0
    # Replaces the read timeout (seconds without a byte) when set: an event stream's.
    read_timeout: float | None = None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class TransportFailure:
    """The request got no answer (connection refused, DNS, network timeout)."""

    error: Exception


@dataclass(frozen=True)
class Send:
    request: HttpRequest


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    """A value for the caller of an iterating operation (a result, a job of a listing)."""

    value: Any


@dataclass(frozen=True)
class OpenStream:
    """Open a Server-Sent Events stream (closing the flow's open one, if any). Reply: status 200 and the
    headers when the stream is open; any other answer (an error, or a 200 that is not an event stream,
    given as 406) as it came, with its body; or a TransportFailure."""

    request: HttpRequest


@dataclass(frozen=True)
class NextEvent:
    """Read the open stream's next event. Reply: a ServerEvent, None when the server ended the stream,
    or a TransportFailure (the connection dropped, or nothing came within the read timeout)."""


@dataclass(frozen=True)
class CloseStream:
    """Close the open stream (a driver also closes it when the flow ends). Reply: None."""


@dataclass(frozen=True)
class ServerEvent:
    """One event of a stream: its ``event`` name (``message`` when it has none), ``data`` and ``id``."""

    name: str
    data: str
    id: str | None = None


Step = Send | Sleep | Emit | OpenStream | NextEvent | CloseStream
Reply = HttpResponse | TransportFailure | ServerEvent | None
Flow = Generator[Step, Reply, T]


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried and how long to wait before each retry.

    Retried: no answer at all, 429, 502, 503 and 504; the server's ``Retry-After`` wins over the
    exponential backoff (``backoff`` × 2^attempt, at most ``max_backoff``, with jitter). A
    ``Retry-After`` beyond ``max_retry_after`` is not waited out: the error is raised at once.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, reply: HttpResponse | TransportFailure) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None when not to retry."""
        if attempt >= self.retries:
            return None
        if isinstance(reply, HttpResponse):
            if reply.status not in RETRY_STATUSES:
                return None
            after = parse_retry_after(reply.headers.get("retry-after"))
            if after is not None:
                return after if after <= self.max_retry_after else None
        exponential = min(self.max_backoff, self.backoff * 2**attempt)
        return exponential * (0.5 + random.random() / 2)


def call(request: HttpRequest, policy: RetryPolicy) -> Flow[HttpResponse]:
    """Send ``request`` until it succeeds or a failure is final; raise the failure as a JudgeError.

    The same request object is sent every time, so a creating POST repeats its Idempotency-Key and a
    retry never creates a second job.
    """
    attempt = 0
    while True:
        reply = yield Send(request)
        assert isinstance(reply, HttpResponse | TransportFailure)
        if isinstance(reply, HttpResponse) and reply.status < 400:
            return reply
        wait = policy.delay(attempt, reply)
        if wait is None:
            if isinstance(reply, TransportFailure):
                raise ConnectionFailed(
                    f"cannot reach the service ({request.method} {request.path}, {attempt + 1} "
                    f"attempt(s)): {reply.error}"
                ) from reply.error
            raise error_from_response(reply.status, reply.body, reply.headers)
        attempt += 1
        yield Sleep(wait)
