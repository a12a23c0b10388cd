"""``/docs`` and ``/redoc`` (HTML, left out of openapi.yaml), with their scripts, styles and icon served
from ``static/`` instead of a CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from app.core.errors import NotFound

STATIC_PATH = "/apidocs/static"
_STATIC_DIR = Path(__file__).parent / "static"
_STATIC = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
    "redoc.standalone.js": "text/javascript",
}
_TITLE = "Judge service"

router = APIRouter(include_in_schema=False)


def _asset(request: Request, name: str) -> str:
    return f"{request.scope.get('root_path', '')}{STATIC_PATH}/{name}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{_TITLE} - Swagger UI",
        swagger_js_url=_asset(request, "swagger-ui-bundle.js"),
        swagger_css_url=_asset(request, "swagger-ui.css"),
        swagger_favicon_url=_asset(request, "favicon-32x32.png"),
        oauth2_redirect_url=f"{request.scope.get('root_path', '')}/docs/oauth2-redirect",
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{_TITLE} - ReDoc",
        redoc_js_url=_asset(request, "redoc.standalone.js"),
        redoc_favicon_url=_asset(request, "favicon-32x32.png"),
        with_google_fonts=False,
    )
    # ReDoc's sidebar shows its vendor's logo from their CDN (and hides it when it cannot load): images
    # from this service only, so the page sends no request elsewhere.
    page.headers["Content-Security-Policy"] = "img-src 'self' data: blob:"
    return page


@router.get(STATIC_PATH + "/{name}")
def static(name: str) -> FileResponse:
    if name not in _STATIC:
        raise NotFound(f"no API-docs asset {name}")
    return FileResponse(
        _STATIC_DIR / name, media_type=_STATIC[name], headers={"Cache-Control": "public, max-age=86400"}
    )
