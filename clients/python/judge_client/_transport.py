"""What the sync and async clients share around httpx: connection settings, turning a request of the
core into httpx arguments, an httpx answer into a response of the core, and the event stream a flow
follows."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from judge_client._protocol import HttpRequest, HttpResponse, RetryPolicy, ServerEvent, TransportFailure
from judge_client._sse import MEDIA_TYPE, EventDecoder
from judge_client.errors import InvalidArgument

__version__ = "0.1.0"

# Where the client goes when neither its arguments nor the environment say (`judge serve`'s default).
DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "JUDGE_URL"
KEY_ENV = "JUDGE_API_KEY"


@dataclass(frozen=True)
class Connection:
    url: str
    key: str | None
    timeout: float
    policy: RetryPolicy

    @classmethod
    def of(cls, url: str | None, key: str | None, timeout: float, retries: int, backoff: float) -> Connection:
        """``url`` and ``key`` left out (None) are read from JUDGE_URL and JUDGE_API_KEY; no URL at all is
        the local service's."""
        if url is None:
            url = os.environ.get(URL_ENV) or DEFAULT_URL
        if key is None:
            key = os.environ.get(KEY_ENV) or None
        if not url.startswith(("http://", "https://")):
            raise InvalidArgument(f"the service URL must start with http:// or https://, got {url!r}")
        if timeout <= 0:
            raise InvalidArgument("timeout must be positive")
        if retries < 0:
            raise InvalidArgument("retries must be 0 or more")
        return cls(url.rstrip("/"), key, timeout, RetryPolicy(retries=retries, backoff=backoff))

    def httpx_arguments(self, request: HttpRequest) -> dict[str, Any]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"judge-client/{__version__}",
            **request.headers,
        }
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        read = self.timeout + request.extra_timeout if request.read_timeout is None else request.read_timeout
        return {
            "method": request.method,
            "url": self.url + request.path,
            "params": request.params or None,
            "json": request.json,
            "headers": headers,
            "timeout": httpx.Timeout(self.timeout, read=read),
        }


def to_response(response: httpx.Response) -> HttpResponse:
    return HttpResponse(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=response.content,
    )


def _is_event_stream(response: httpx.Response) -> bool:
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return response.status_code == 200 and media_type == MEDIA_TYPE


def _not_a_stream(response: httpx.Response) -> HttpResponse:
    """An answer that opened no stream; a 200 of another type is a 406 (it is not what was asked for)."""
    answer = to_response(response)
    if answer.status == 200:
        return HttpResponse(status=406, headers=answer.headers, body=answer.body)
    return answer


def _opened(response: httpx.Response) -> HttpResponse:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return HttpResponse(status=response.status_code, headers=headers, body=b"")


class EventStream:
    """The event stream a flow of the sync client has open (one at a time)."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] = iter(())
        self._decoder = EventDecoder()

    def open(self, arguments: dict[str, Any]) -> HttpResponse | TransportFailure:
        self.close()
        try:
            response = self._http.send(self._http.build_request(**arguments), stream=True)
            if not _is_event_stream(response):
                try:
                    response.read()
                finally:
                    response.close()
                return _not_a_stream(response)
        except httpx.TransportError as exc:
            return TransportFailure(exc)
        self._response, self._lines, self._decoder = response, response.iter_lines(), EventDecoder()
        return _opened(response)

    def next(self) -> ServerEvent | TransportFailure | None:
        try:
            for line in self._lines:
                event = self._decoder.feed(line)
                if event is not None:
                    return event
        except httpx.TransportError as exc:
            return TransportFailure(exc)
        return None

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response, self._lines = None, iter(())


class AsyncEventStream:
    """The event stream a flow of the asyncio client has open (one at a time)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._decoder = EventDecoder()

    async def open(self, arguments: dict[str, Any]) -> HttpResponse | TransportFailure:
        await self.close()
        try:
            response = await self._http.send(self._http.build_request(**arguments), stream=True)
            if not _is_event_stream(response):
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                return _not_a_stream(response)
        except httpx.TransportError as exc:
            return TransportFailure(exc)
        self._response, self._lines, self._decoder = response, response.aiter_lines(), EventDecoder()
        return _opened(response)

    async def next(self) -> ServerEvent | TransportFailure | None:
        if self._lines is None:
            return None
        try:
            async for line in self._lines:
                event = self._decoder.feed(line)
                if event is not None:
                    return event
        except httpx.TransportError as exc:
            return TransportFailure(exc)
        return None

    async def close(self) -> None:
        if self._response is not None:
            await self._response.aclose()
        self._response, self._lines = None, None
