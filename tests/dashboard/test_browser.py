"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright against
the real app served by uvicorn, on its own database, with jobs created through the API and judged by
a scripted worker. Screenshots land in tests/dashboard/artifacts/ for a person to look at."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from redis import Redis
from sqlalchemy import select

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.config import Settings
from app.core.migrate import upgrade
from app.core.state import AppState
from app.db.tables import Job
from app.engine.base import Conversation
from app.main import create_app
from app.models import repository as models_repo
from app.self_reward import repository as sr_repo
from tests.api import test_juries as jury_tests
from tests.api.helpers import DEFAULT_MODEL, PAIR, PAIRWISE, SINGLE, SINGLE_URL, with_
from tests.api.test_prompt_opt import URL as PROMPT_OPT_URL
from tests.conftest import TEST_REDIS_URL, scratch_database
from tests.workers import test_prompt_opt_job as po_job
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
    failing_job: str
    prompt_opt_job: str
    self_reward_job: str
    jury_job: str
    failed_job: str


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
    and on the MT-Bench run, where it prefers the longer answer; grades 7 out of 10; says nothing usable
    about a "broken" question; plays task model and optimizer of a prompt-optimization job."""
    text = user_text(conv)
    if "Review:" in text or "prompt engineer" in (conv[0]["content"] if conv[0]["role"] == "system" else ""):
        return po_job.scripted(conv)
    if "broken" in text:
        return "no verdict here"
    if "=== Answer A ===" not in text:
        return "7]]"
    if "MT-Bench question" in text:
        return longer_answer_judge(conv)
    if "fair" in text:
        return "A]]" if "=== Answer A ===\n4\n" in text else "B]]"
    return first_position_judge(conv)


# A jury of the default model under three names: two prefer the longer answer, one what it sees first.
JURY = {
    DEFAULT_MODEL: longer_answer_judge,
    jury_tests.OTHER: longer_answer_judge,
    jury_tests.THIRD: first_position_judge,
}

SELF_REWARD_METRICS: list[dict[str, Any]] = [
    {"training": {"kind": "sft", "loss_history": [2.3, 1.9, 1.6, 1.5]}},
    {
        "score_histogram": {"0": 0, "1": 1, "2": 2, "3": 4, "4": 5, "5": 2},
        "pairs": {"kept": 6, "prompts": 8, "tie_dropped": 2},
        "training": {"kind": "dpo", "loss_history": [0.69, 0.64, 0.58]},
        "evaluation": {"win_rate_vs_previous": {"win_rate": 0.625, "n": 8, "errors": 0}},
    },
]


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
        for model in JURY:
            models_repo.upsert(session, model, "transformers", None)
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
        tags = {"mtbench_run": RUN, "mtbench_judge": settings.default_model, "category": "writing"}
        run_job_id = api.post(PAIRWISE, json={"items": _run_items(), "metadata": tags}).json()["id"]
        grades = [
            {"id": f"{q}|{model}|1", "question": f"MT-Bench question {q}", "answer": answer}
            for model, answer in RUN_ANSWERS.items()
            for q in (81, 82)
        ]
        run_grades = api.post(SINGLE_URL, json={"items": grades, "metadata": tags}).json()["id"]
        broken = [with_(PAIR, id=f"broken-{i}", question=f"broken question {i}") for i in range(2)]
        failing = api.post(
            PAIRWISE, json={"items": [with_(PAIR, id="fine"), *broken], "metadata": {"team": "browser"}}
        ).json()["id"]
        all_failed = api.post(PAIRWISE, json={"items": [with_(PAIR, question="broken question 9")]}).json()[
            "id"
        ]
        prompt_opt = api.post(PROMPT_OPT_URL, json=po_job.body()).json()["id"]
        self_reward = api.post("/v1/jobs/self-reward", json={}).json()["id"]
        previous = context._current
        install_scripted_worker(settings, state.db, state.queue, _judge, "browser-test-worker")
        try:
            # The worker fuses the judging jobs into its batches.
            assert run_job(pairwise) == "done"
            assert run_job(prompt_opt) == "succeeded"
        finally:
            context._current = previous
        with state.db.unit_of_work() as session:
            # What a self-reward worker records after its stages (training is out of this test's reach).
            for t, metrics in enumerate(SELF_REWARD_METRICS):
                sr_repo.save_iteration(session, uuid.UUID(self_reward), t, metrics=metrics)
        jury_items = [
            {"question": "jury question 1", "answer_a": "a long answer", "answer_b": "short"},
            {"question": "jury question 2", "answer_a": "short", "answer_b": "a long answer"},
        ]
        jury = api.post(PAIRWISE, json={"items": jury_items, "judges": list(JURY)}).json()["id"]
        with state.db.unit_of_work() as session:
            rows = session.execute(select(Job.model, Job.id).where(Job.parent_id == uuid.UUID(jury)))
            members = {str(model): str(job_id) for model, job_id in rows}
        # Each judge of the jury is a member job on its own model's queue, run by that model's worker.
        patch = pytest.MonkeyPatch()
        try:
            for model, reply in JURY.items():
                jury_tests.run_as(state, model, reply, members[model], patch)
        finally:
            patch.undo()
        assert api.get(f"/v1/jobs/{single}").json()["status"] == "succeeded"
        assert api.get(f"/v1/jobs/{run_job_id}").json()["status"] == "succeeded"
        assert api.get(f"/v1/jobs/{run_grades}").json()["status"] == "succeeded"
        # Left queued: no worker runs from now on (and the verdict cache, which holds PAIR, is not asked).
        cancelled = api.post(PAIRWISE, json={"items": [PAIR], "cache": "off"}).json()["id"]
        assert api.get(f"/v1/jobs/{failing}").json()["progress"]["failed"] == 2
        api.post(f"/v1/jobs/{self_reward}/cancel").raise_for_status()  # (left queued, it never ends)
        assert api.get(f"/v1/jobs/{jury}").json()["status"] == "succeeded"
        assert api.get(f"/v1/jobs/{all_failed}").json()["status"] == "failed"
        yield LiveApp(
            url, key, pairwise, single, cancelled, failing, prompt_opt, self_reward, jury, all_failed
        )
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
    expect(rows).to_have_count(10)
    expect(page.locator("table.jobs")).to_contain_text("judge_single")
    expect(page.locator("table.jobs")).to_contain_text("cancelled")
    assert page.locator("table.jobs svg.bar").first.get_attribute("aria-valuemax") is not None
    shot(page, "jobs.png")

    page.select_option("select[name=status]", "cancelled")
    page.click("#job-filters button")
    expect(rows).to_have_count(2)  # and the self-reward job
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
    # It opens on the newest run.
    expect(page.locator("#pairwise-board")).to_be_visible()
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


def sign_in_page(browser: Browser, live_app: LiveApp) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_app.url}/dashboard/sign-in")
    page.fill("#api_key", live_app.key)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_app.url}/dashboard")
    return page


def test_failures_metadata_short_ids_and_charts_in_chromium(live_app: LiveApp, browser: Browser) -> None:
    page = sign_in_page(browser, live_app)
    blocked: list[str] = []  # what the page's security policy refused, if anything
    page.on("console", lambda msg: blocked.append(msg.text) if msg.type == "error" else None)

    # Failed items: their count, and a red share of the bar after the blue one.
    row = page.locator("tr.job-row", has=page.locator(f"a[href$='{live_app.failing_job}']"))
    expect(row.locator(".failed-count")).to_have_text("2 failed")
    ok_box, failed_box = (row.locator(f"rect.bar-{part}").bounding_box() for part in ("ok", "failed"))
    assert ok_box is not None and failed_box is not None
    assert failed_box["width"] == pytest.approx(2 * ok_box["width"], rel=0.05)
    assert failed_box["x"] == pytest.approx(ok_box["x"] + ok_box["width"], abs=1)
    fill = row.locator("rect.bar-failed").evaluate("e => getComputedStyle(e).fill")
    assert fill == "rgb(180, 35, 24)", fill
    # A job whose only item failed ended failed: its row is marked, with the reason, its bar all red.
    failed = page.locator("tr.job-failed", has=page.locator(f"a[href$='{live_app.failed_job}']"))
    expect(failed.locator(".status")).to_have_text("failed")
    expect(failed.locator(".job-error")).to_contain_text("its only item failed")
    track, red = (failed.locator(f"rect.bar-{part}").bounding_box() for part in ("track", "failed"))
    assert track is not None and red is not None and red["width"] == pytest.approx(track["width"], abs=1)
    shade = failed.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert shade == "rgb(255, 246, 245)", shade
    shot(page, "jobs-failed-items.png")

    # Metadata: shown as chips; typed as key=value, or a chip clicked, filters the list.
    page.fill("input[name=metadata]", "team=browser")
    page.click("#job-filters button")
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(live_app.failing_job[:8])
    page.goto(f"{live_app.url}/dashboard")
    page.click("a.chip:has-text('category=writing')")
    expect(rows).to_have_count(2)  # the run's two jobs
    expect(page.locator("input[name=metadata]")).to_have_value("category=writing")

    # A pasted short id opens the job; its page shows the whole id.
    page.fill("#find-job input[name=id]", live_app.failing_job[:8])
    page.click("#find-job button")
    expect(page).to_have_url(f"{live_app.url}/dashboard/jobs/{live_app.failing_job}")
    expect(page.locator("#job-id")).to_have_text(live_app.failing_job)
    expect(page.locator("#failed-items")).to_contain_text("2 of 3 item(s) failed")
    page.select_option("select[name=only]", "error")
    page.click("#item-filters button")
    expect(page.locator("article.item")).to_have_count(2)
    expect(page.locator("#item-count")).to_have_text("2 of 3 items")
    page.goto(f"{live_app.url}/dashboard/find?id=zz")
    expect(page.locator(".alert")).to_contain_text("is not a job id")

    # A judging job's summary as bar charts with interval whiskers.
    page.goto(f"{live_app.url}/dashboard/jobs/{live_app.pairwise_job}")
    chart = page.locator("#win-rate-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("g.bar-row")).to_have_count(2)  # A and B
    box = chart.locator("svg").bounding_box()
    assert box is not None and box["width"] > 300
    shot(page, "job-charts.png")

    # The leaderboard: the run's win rates with whiskers, its category, score histograms.
    page.goto(f"{live_app.url}/dashboard/leaderboard")
    expect(page.locator("#win-rate-chart g.bar-row")).to_have_count(4)  # three models and the baseline
    expect(page.locator("#win-rate-chart .whisker")).to_have_count(4)
    expect(page.locator("#category-charts figcaption")).to_have_text(["Category: writing"])
    expect(page.locator("#score-histograms figure")).to_have_count(4)
    shot(page, "leaderboard-charts.png")

    # Prompt optimization: the best prompt as a diff, the candidates as a table.
    page.goto(f"{live_app.url}/dashboard/jobs/{live_app.prompt_opt_job}")
    expect(page.locator("#prompt-diff ins")).to_contain_text("Pay attention to:")
    green = page.locator("#prompt-diff ins").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert green == "rgb(220, 250, 230)", green
    assert page.locator("#candidates tbody tr").count() > 3
    expect(page.locator("#candidates .status-ok")).to_have_text("best")
    shot(page, "prompt-opt.png")

    # Self-reward: per-iteration charts.
    page.goto(f"{live_app.url}/dashboard/jobs/{live_app.self_reward_job}")
    expect(page.locator("#loss-chart polyline")).to_have_count(2)
    expect(page.locator("#pairs-chart g.bar-row")).to_have_count(1)
    expect(page.locator("#win-rate-chart")).to_contain_text("62.5%")
    expect(page.locator("#score-histogram-0 g.column")).to_have_count(6)
    shot(page, "self-reward.png")

    # A jury: its judges' agreement as a matrix, coloured by Landis and Koch's bands.
    page.goto(f"{live_app.url}/dashboard/jobs/{live_app.jury_job}")
    matrix = page.locator("#agreement table.matrix")
    expect(matrix.locator("thead th[scope=col]")).to_have_text(list(JURY))
    first_row = matrix.locator("tbody tr").first.locator("td")
    expect(first_row).to_have_count(3)
    expect(first_row.nth(0)).to_have_text("1.00")  # itself
    expect(first_row.nth(1)).to_have_text("1.00")  # the other judge that prefers the longer answer
    colour = first_row.nth(1).evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(134, 207, 160)", colour  # almost perfect
    expect(page.locator("#fleiss-kappa")).to_contain_text("Fleiss' κ over all judges")
    expect(page.locator("#jury-judges tbody tr")).to_have_count(3)
    shot(page, "jury.png")
    assert not [m for m in blocked if "Content Security Policy" in m], blocked
    page.close()
