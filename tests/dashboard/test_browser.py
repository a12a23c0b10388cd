"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright against
the real app served by uvicorn, on its own database, with jobs created through the API and judged by
a scripted worker. Screenshots land in tests/dashboard/artifacts/ for a person to look at."""

from __future__ import annotations

import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from redis import Redis

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.config import Settings
from app.core.migrate import upgrade
from app.core.state import AppState
from app.engine.base import Conversation
from app.main import create_app
from app.models import repository as models_repo
from tests.api.helpers import PAIR, PAIRWISE, SINGLE, SINGLE_URL, with_
from tests.conftest import TEST_REDIS_URL, scratch_database
from tests.workers.conftest import (
    first_position_judge,
    install_scripted_worker,
    longer_answer_judge,
    user_text,
)
from workers import context
from workers.tasks import run_job

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
# Flags that work in containers without a GPU, a sandbox or a network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium for the browser test (apt-get install chromium)"
)


@dataclass
class LiveApp:
    url: str
    key: str
    pairwise_job: str
    single_job: str
    cancelled_job: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# An MT-Bench run: three models against a baseline; the judge prefers longer answers there.
RUN = "mt-bench-demo"
RUN_ANSWERS = {
    "alpha-7b": "A long, detailed answer that walks through every step.",
    "beta-1b": "A short answer.",
    "gamma-3b": "An answer of middling length, some steps.",
    "baseline": "A baseline answer, medium.",
}


def _run_items() -> list[dict[str, str]]:
    return [
        {
            "id": f"{q}|{model}|baseline|1",
            "question": f"MT-Bench question {q}",
            "answer_a": answer,
            "answer_b": RUN_ANSWERS["baseline"],
        }
        for model, answer in RUN_ANSWERS.items()
        if model != "baseline"
        for q in (81, 82, 83)
    ]


def _judge(conv: Conversation) -> str:
    """Position-biased, except on the "fair" question, where it prefers the answer "4" wherever it is,
    and on the MT-Bench run, where it prefers the longer answer; grades 7 out of 10."""
    text = user_text(conv)
    if "=== Answer A ===" not in text:
        return "7]]"
    if "MT-Bench question" in text:
        return longer_answer_judge(conv)
    if "fair" in text:
        return "A]]" if "=== Answer A ===\n4\n" in text else "B]]"
    return first_position_judge(conv)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    db_url = scratch_database("judge_dashboard")
    upgrade(db_url)
    Redis.from_url(TEST_REDIS_URL).flushdb()
    settings = Settings(
        database_url=db_url,
        redis_url=TEST_REDIS_URL,
        data_dir=tmp_path_factory.mktemp("data"),
        batch_size=8,
        job_lease_seconds=600.0,
        dashboard_refresh_seconds=1,
    )
    state = AppState.build(settings)
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, settings.default_model, "transformers", None)
        _, key = create_key(session, "default", list(SCOPES), "browser test")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(state=state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        items = [PAIR, with_(PAIR, id="fair-one", question="fair: what is 2+2?"), with_(PAIR, id="third")]
        pairwise = api.post(PAIRWISE, json={"items": items}).json()["id"]
        single = api.post(SINGLE_URL, json={"items": [SINGLE, with_(SINGLE, answer="5")]}).json()["id"]
        tags = {"mtbench_run": RUN, "mtbench_judge": settings.default_model}
        run_job_id = api.post(PAIRWISE, json={"items": _run_items(), "metadata": tags}).json()["id"]
        previous = context._current
        install_scripted_worker(settings, state.db, state.queue, _judge, "browser-test-worker")
        try:
            # The worker fuses both jobs into its batches.
            assert run_job(pairwise) == "done"
        finally:
            context._current = previous
        assert api.get(f"/v1/jobs/{single}").json()["status"] == "succeeded"
        assert api.get(f"/v1/jobs/{run_job_id}").json()["status"] == "succeeded"
        # Left queued: no worker runs from now on (and the verdict cache, which holds PAIR, is not asked).
        cancelled = api.post(PAIRWISE, json={"items": [PAIR], "cache": "off"}).json()["id"]
        yield LiveApp(url, key, pairwise, single, cancelled)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        state.db.dispose()
        state.redis.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright gives each launch a fresh profile directory of its own.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_sign_in_list_and_job_page_in_chromium(live_app: LiveApp, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_app.url}/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?next="))
    page.fill("#api_key", "jk_wrong")
    page.click("button[type=submit]")
    expect(page.locator(".alert")).to_contain_text("invalid API key")
    shot(page, "sign-in-error.png")
    page.fill("#api_key", live_app.key)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_app.url}/dashboard")
    # The key lives in an HttpOnly cookie: the page's scripts cannot read it.
    assert page.evaluate("document.cookie") == ""

    # A queued job on the page: it reloads itself until nothing on it is active.
    expect(page.locator("body")).to_have_attribute("data-refresh", "1")
    with page.expect_navigation(timeout=15_000):
        pass
    httpx.post(
        f"{live_app.url}/v1/jobs/{live_app.cancelled_job}/cancel",
        headers={"Authorization": f"Bearer {live_app.key}"},
    ).raise_for_status()
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-refresh", "0")
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("table.jobs")).to_contain_text("judge_single")
    expect(page.locator("table.jobs")).to_contain_text("cancelled")
    assert page.locator("table.jobs progress").first.get_attribute("max") is not None
    shot(page, "jobs.png")

    page.select_option("select[name=status]", "cancelled")
    page.click(".filters button")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(live_app.cancelled_job[:8])

    page.goto(f"{live_app.url}/dashboard")
    page.click(f"a[href$='{live_app.pairwise_job}']")
    expect(page).to_have_url(f"{live_app.url}/dashboard/jobs/{live_app.pairwise_job}")
    expect(page.locator("#consistency-rate .value")).to_have_text("33.3%")
    expect(page.locator("#first-position-rate .value")).to_have_text("83.3%")
    expect(page.locator("article.item")).to_have_count(3)
    fair = page.locator("article.item", has_text="fair-one")
    expect(fair.locator(".consistency")).to_have_text("orders agree")
    expect(fair.locator(".order")).to_have_count(2)
    expect(fair.locator(".order").nth(0)).to_contain_text("A shown first")
    expect(fair.locator(".order").nth(1)).to_contain_text("B shown first")
    # The two orders sit side by side.
    ab, ba = (fair.locator(".order").nth(i).bounding_box() for i in range(2))
    assert ab is not None and ba is not None and ab["y"] == ba["y"] and ab["x"] < ba["x"]
    shot(page, "job-pairwise.png")

    page.goto(f"{live_app.url}/dashboard/jobs/{live_app.single_job}")
    expect(page.locator("article.item")).to_have_count(2)
    expect(page.locator(".stats")).to_contain_text("Mean score")
    shot(page, "job-single.png")

    page.click("a:has-text('Leaderboard')")
    expect(page.locator("select[name=run] option")).to_have_text([RUN])
    page.click(".filters button")
    expect(page).to_have_url(f"{live_app.url}/dashboard/leaderboard?run={RUN}")
    board = page.locator("#pairwise-board tbody tr")
    expect(board).to_have_count(3)  # the baseline is not ranked
    expect(board.nth(0)).to_contain_text("alpha-7b")
    expect(board.nth(2)).to_contain_text("beta-1b")
    expect(page.locator("h2", has_text="Pairwise against baseline")).to_have_count(1)
    shot(page, "leaderboard.png")

    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(f"{live_app.url}/dashboard/sign-in")
    page.goto(f"{live_app.url}/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in"))
    page.close()
