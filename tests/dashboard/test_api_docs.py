"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) work with no internet: their scripts, styles and icon
come from the service itself, and in a headless browser that may reach nothing but the service, both
pages render the API's operations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Route, expect

from tests.client.live import LiveService, live_service, migrated_scratch
from tests.conftest import TEST_REDIS_URL
from tests.dashboard.test_browser import CHROMIUM, browser, shot  # noqa: F401 - browser: a fixture

ASSET = re.compile(r'(?:src|href)="([^"]+)"|url: *[\'"]([^\'"]+)[\'"]|spec-url="([^"]+)"')


def _references(html: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in ASSET.finditer(html)]


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon-32x32.png"}),
    ],
)
def test_the_docs_pages_load_every_asset_from_the_service(
    client: TestClient, page: str, assets: set[str]
) -> None:
    r = client.get(page, headers={"Authorization": ""})  # public, like FastAPI's own pages
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = _references(r.text)
    assert "/openapi.json" in refs
    assert all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert "fonts.googleapis.com" not in r.text and "cdn.jsdelivr.net" not in r.text
    served = {ref.rsplit("/", 1)[1] for ref in refs if ref.startswith("/apidocs/static/")}
    assert served == assets
    for ref in refs:
        if ref.startswith("/apidocs/static/"):
            asset = client.get(ref)
            assert asset.status_code == 200, ref
            assert asset.content, ref
            if ref.endswith(".js"):
                assert asset.headers["content-type"].startswith("text/javascript")
                assert len(asset.content) > 500_000, ref  # the whole bundle


def test_an_unknown_asset_is_404(client: TestClient) -> None:
    assert client.get("/apidocs/static/swagger-ui.LICENSE").status_code == 404
    assert client.get("/apidocs/static/..%2Fstatic%2Fredoc.LICENSE").status_code == 404


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    db = migrated_scratch("judge_apidocs")
    with live_service(db, TEST_REDIS_URL, Path(tmp_path_factory.mktemp("data"))) as svc:
        yield svc


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_both_pages_render_the_operations_with_no_network(browser: Browser, live: LiveService) -> None:  # noqa: F811
    context = browser.new_context()
    refused: list[str] = []

    def only_the_service(route: Route) -> None:
        if route.request.url.startswith(live.url + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_service)
    page = context.new_page()
    try:
        page.goto(live.url + "/docs")
        expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
        assert page.locator(".opblock").count() > 20
        expect(page.locator(".opblock-summary-path", has_text="/v1/judgments/pairwise").first).to_be_visible()
        shot(page, "api-docs-swagger.png")

        page.goto(live.url + "/redoc")
        expect(page.get_by_text("Judge pairs of answers", exact=False).first).to_be_attached(timeout=30_000)
        expect(page.locator("h1", has_text="Judge service")).to_be_visible()
        shot(page, "api-docs-redoc.png")
    finally:
        context.close()
    assert refused == []
