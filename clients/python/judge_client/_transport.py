"""What the sync and async clients share around httpx: connection settings, turning a request of the
core into httpx arguments, and an httpx answer into a response of the core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from judge_client._protocol import HttpRequest, HttpResponse, RetryPolicy

__version__ = "0.1.0"


@dataclass(frozen=True)
class Connection:
    url: str
    key: str | None
    timeout: float
    policy: RetryPolicy

    @classmethod
    def of(cls, url: str, key: str | None, timeout: float, retries: int, backoff: float) -> Connection:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the service URL must start with http:// or https://, got {url!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        return cls(url.rstrip("/"), key, timeout, RetryPolicy(retries=retries, backoff=backoff))

    def httpx_arguments(self, request: HttpRequest) -> dict[str, Any]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"judge-client/{__version__}",
            **request.headers,
        }
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return {
            "method": request.method,
            "url": self.url + request.path,
            "params": request.params or None,
            "json": request.json,
            "headers": headers,
            "timeout": httpx.Timeout(self.timeout, read=self.timeout + request.extra_timeout),
        }


def to_response(response: httpx.Response) -> HttpResponse:
    return HttpResponse(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=response.content,
    )
