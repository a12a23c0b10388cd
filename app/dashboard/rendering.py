"""HTML responses of the dashboard: the Jinja2 environment (autoescaped), the headers every page gets, and
a route class that answers errors with HTML pages instead of the JSON error body."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined

from app.core.errors import ApiError, format_loc
from app.dashboard import session

# Pages hold a tenant's data: never cached, never framed; scripts and styles only from this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def _pct(value: float | None) -> str:
    return f"{100 * value:.1f}%" if value is not None else "—"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


_env = Environment(
    loader=PackageLoader("app.dashboard", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(when=_when, pct=_pct, pretty=_pretty)
templates = Jinja2Templates(env=_env)


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    base = request.scope.get("root_path", "") + session.PATH
    response = templates.TemplateResponse(request, name, {"base": base, **context}, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def sign_in_url(request: Request, expired: bool = False) -> str:
    """The sign-in form, coming back to this page afterwards (``expired``: the key stopped working)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = {"next": target, **({"expired": "1"} if expired else {})}
    return f"{session.PATH}/sign-in?{urlencode(query)}"


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    response = page(request, "error.html", {"status": status, "message": message}, status)
    response.headers.update(headers or {})
    return response


class HtmlRoute(APIRoute):
    """Dashboard routes: no valid key → the sign-in form; a 4xx → an HTML page saying what is wrong."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def html_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except session.SignInRequired as exc:
                response = redirect(sign_in_url(request, expired=exc.expired))
                if exc.expired:
                    session.forget(response)
                return response
            except ApiError as exc:
                return error_page(request, exc.status, exc.message, exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                field = format_loc(first.get("loc", ()))
                message = str(first.get("msg", "invalid request"))
                return error_page(request, 422, f"{field}: {message}" if field else message)

        return html_errors
