"""The dashboard over HTTP: signing in with a key, the jobs list, a job's page, tenant isolation."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from rq import Queue
from sqlalchemy import select

from app.auth.cache import PrincipalCache
from app.auth.service import create_key, revoke
from app.core.state import AppState
from app.dashboard import service as dashboard_service
from app.db.tables import DashboardSession
from app.engine.base import Conversation
from app.jobs.queue import JobQueue, queue_name
from app.judging import service as judging_service
from app.judging.schemas import PairwiseRequest
from app.models import repository as models_repo
from app.self_reward import repository as sr_repo
from tests.api import test_juries as jury_tests
from tests.api.helpers import DEFAULT_MODEL, PAIR, PAIRWISE, SINGLE_URL, with_
from tests.api.test_prompt_opt import URL as PROMPT_OPT_URL
from tests.api.test_prompt_opt import body as prompt_opt_body
from tests.workers import test_prompt_opt_job as po_job
from tests.workers.conftest import ScriptedEngine, first_position_judge, longer_answer_judge, user_text
from workers.tasks import run_job

Worker = Callable[[Callable[[Conversation], str]], ScriptedEngine]


@pytest.fixture
def browser(client: TestClient) -> TestClient:
    """The app as a browser sees it: no Authorization header, only what the sign-in cookie gives; its
    forms say where they come from (``Origin``), as browsers' do."""
    client.headers.pop("Authorization")
    client.headers["Origin"] = "http://testserver"
    return client


def sign_in(browser: TestClient, key: str, next_page: str = "/dashboard") -> None:
    response = browser.post(
        "/dashboard/sign-in", data={"api_key": key, "next": next_page}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == next_page


def make_key(state: AppState, tenant: str, *scopes: str) -> str:
    with state.db.unit_of_work() as session:
        return create_key(session, tenant, list(scopes), "dashboard")[1]


def submit_pairwise(state: AppState, tenant: str, items: list[dict[str, str]]) -> str:
    with state.db.unit_of_work() as session:
        submitted = judging_service.submit(
            session,
            state.settings,
            JobQueue(state.redis, 60),
            "pairwise",
            PairwiseRequest.model_validate({"items": items}),
            tenant=tenant,
        )
        return str(submitted.job.id)


def test_pages_send_a_browser_without_the_cookie_to_sign_in(browser: TestClient, api_key: str) -> None:
    response = browser.get("/dashboard?status=queued", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/sign-in?next=%2Fdashboard%3Fstatus%3Dqueued"
    # A Bearer header is not how the dashboard signs in.
    response = browser.get(
        "/dashboard", headers={"Authorization": f"Bearer {api_key}"}, follow_redirects=False
    )
    assert response.status_code == 303
    form = browser.get("/dashboard/sign-in?next=/dashboard/jobs/x")
    assert form.status_code == 200
    assert 'name="api_key"' in form.text and 'value="/dashboard/jobs/x"' in form.text


def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_clears_it(
    browser: TestClient, api_key: str
) -> None:
    response = browser.post("/dashboard/sign-in", data={"api_key": api_key}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("judge_dashboard_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain http here
    page = browser.get("/dashboard")
    assert page.status_code == 200 and "tenant <strong>default</strong>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"

    out = browser.post("/dashboard/sign-out", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/sign-in"
    assert 'judge_dashboard_session=""' in out.headers["set-cookie"]
    assert browser.get("/dashboard", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_over_https(state: AppState, api_key: str) -> None:
    from app.main import create_app

    with TestClient(
        create_app(state=state), base_url="https://testserver", headers={"Origin": "https://testserver"}
    ) as c:
        response = c.post("/dashboard/sign-in", data={"api_key": api_key}, follow_redirects=False)
    assert "Secure" in response.headers["set-cookie"]


def test_sign_in_refuses_bad_keys_forged_forms_and_unsafe_redirects(
    browser: TestClient, state: AppState
) -> None:
    response = browser.post("/dashboard/sign-in", data={"api_key": "jk_nope"})
    assert response.status_code == 401 and "invalid API key" in response.text
    assert "set-cookie" not in response.headers
    with state.db.unit_of_work() as session:  # (a key whose only scope was the dropped `models:write`)
        record, no_scopes = create_key(session, "default", ["judge"], "dashboard")
        record.scopes = []
    response = browser.post("/dashboard/sign-in", data={"api_key": no_scopes})
    assert (
        response.status_code == 403 and "lacks the &#39;judge&#39; or &#39;jobs&#39; scope" in response.text
    )
    good = make_key(state, "default", "judge")
    forged = browser.post(
        "/dashboard/sign-in", data={"api_key": good}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    response = browser.post(
        "/dashboard/sign-in", data={"api_key": good, "next": "https://evil.example/"}, follow_redirects=False
    )
    assert response.headers["location"] == "/dashboard"


def test_a_revoked_key_signs_the_browser_out(browser: TestClient, state: AppState) -> None:
    state.principals = PrincipalCache(0.3)  # (a revoked key works on for at most this long)
    with state.db.unit_of_work() as session:
        record, key = create_key(session, "default", ["judge"], "soon revoked")
    sign_in(browser, key)
    assert browser.get("/dashboard").status_code == 200
    with state.db.unit_of_work() as session:
        revoke(session, record.id)
    time.sleep(0.35)
    response = browser.get("/dashboard", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/sign-in?next=%2Fdashboard&expired=1"
    assert 'judge_dashboard_session=""' in response.headers["set-cookie"]
    assert "no longer works" in browser.get(response.headers["location"]).text


def test_the_cookie_holds_a_revocable_session_id_not_the_key(browser: TestClient, state: AppState) -> None:
    """Issue 17 probe 10: the dashboard cookie held the raw API key."""
    with state.db.unit_of_work() as session:
        record, key = create_key(session, "default", ["judge"], "dashboard")
    sign_in(browser, key)
    stolen = browser.cookies["judge_dashboard_session"]
    assert key not in browser.cookies.values() and record.prefix not in stolen
    with state.db.unit_of_work() as session:
        stored = session.scalars(select(DashboardSession.digest)).all()
    assert stolen not in stored and len(stored) == 1  # only a digest is kept
    thief = TestClient(browser.app, cookies={"judge_dashboard_session": stolen})
    assert thief.get("/dashboard").status_code == 200
    # The API takes no session id for a key.
    assert thief.get("/v1/jobs", headers={"Authorization": f"Bearer {stolen}"}).status_code == 401
    # Signing out ends the session everywhere, not only in this browser; the key itself works on.
    assert browser.post("/dashboard/sign-out", follow_redirects=False).status_code == 303
    assert thief.get("/dashboard", follow_redirects=False).status_code == 303
    sign_in(browser, key)
    again = TestClient(
        browser.app, cookies={"judge_dashboard_session": browser.cookies["judge_dashboard_session"]}
    )
    assert again.get("/dashboard").status_code == 200
    # Revoking the key ends its sessions at once (no cache grace).
    with state.db.unit_of_work() as session:
        revoke(session, record.id)
        ended = session.scalars(select(DashboardSession.revoked_at)).all()
    assert all(when is not None for when in ended)
    assert again.get("/dashboard", follow_redirects=False).status_code == 303


def test_a_form_that_does_not_say_where_it_comes_from_is_refused(
    browser: TestClient, state: AppState
) -> None:
    """Issue 17 probe 10: sign-in's CSRF check trusted a request without `Sec-Fetch-Site`."""
    key = make_key(state, "default", "judge")
    browser.headers.pop("Origin")
    for headers in (
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        forged = browser.post(
            "/dashboard/sign-in", data={"api_key": key}, headers=headers, follow_redirects=False
        )
        assert forged.status_code == 403 and "set-cookie" not in forged.headers, headers
    for headers in ({"Origin": "http://testserver"}, {"Sec-Fetch-Site": "same-origin"}):
        signed = browser.post(
            "/dashboard/sign-in", data={"api_key": key}, headers=headers, follow_redirects=False
        )
        assert signed.status_code == 303, headers


def test_jobs_list_filters_pages_and_shows_only_the_tenants_jobs(
    browser: TestClient, state: AppState, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = [submit_pairwise(state, "default", [PAIR]) for _ in range(3)]
    theirs = submit_pairwise(state, "other-team", [PAIR])
    browser.post(f"/v1/jobs/{mine[0]}/cancel", headers={"Authorization": f"Bearer {api_key}"})
    sign_in(browser, api_key)

    listing = browser.get("/dashboard").text
    assert all(job_id[:8] in listing for job_id in mine)
    assert theirs[:8] not in listing
    assert listing.count('role="progressbar"') == 3

    cancelled = browser.get("/dashboard?status=cancelled&kind=judge_pairwise").text
    assert mine[0][:8] in cancelled and mine[1][:8] not in cancelled
    assert browser.get("/dashboard?status=&kind=").status_code == 200  # "any" in the form

    bad = browser.get("/dashboard?status=done")
    assert bad.status_code == 422 and "status must be one of" in bad.text

    monkeypatch.setattr(dashboard_service, "JOBS_PER_PAGE", 2)
    first = browser.get("/dashboard").text
    older = re.search(r'href="(\?cursor=[^"]+)"', first)
    assert older, first
    second = browser.get("/dashboard" + older.group(1).replace("&amp;", "&")).text
    assert mine[0][:8] in second and mine[2][:8] not in second  # newest first
    assert "Newest" in second and "Older" not in second


def test_another_tenants_job_is_not_found(browser: TestClient, state: AppState, api_key: str) -> None:
    theirs = submit_pairwise(state, "other-team", [PAIR])
    sign_in(browser, api_key)
    response = browser.get(f"/dashboard/jobs/{theirs}")
    assert response.status_code == 404 and f"no job {theirs}" in response.text
    assert browser.get("/dashboard/jobs/not-a-uuid").status_code == 422


def test_job_page_shows_verdicts_both_orders_and_the_batch_rates(
    browser: TestClient, state: AppState, api_key: str, worker: Worker
) -> None:
    def judge(conv: Conversation) -> str:
        # Position-biased, except on the "fair" item where it reasons about content: picks answer "4".
        text = user_text(conv)
        if "fair" not in text:
            return first_position_judge(conv)
        return "A]]" if "=== Answer A ===\n4\n" in text else "B]]"

    job_id = submit_pairwise(
        state, "default", [PAIR, with_(PAIR, question="fair: what is 2+2?"), with_(PAIR, id="third")]
    )
    worker(judge)
    assert run_job(job_id) == "done"
    sign_in(browser, api_key)
    page = browser.get(f"/dashboard/jobs/{job_id}")
    assert page.status_code == 200
    html = page.text
    assert "succeeded" in html and "3/3" in html
    # Consistency: only the fair item's orders agreed (1 of 3). First-position picks: both orders of the
    # two biased items, and the fair item's AB order (4 is shown first there): 5 of 6.
    assert re.search(r'id="consistency-rate">.*?33\.3%.*?1 of 3 items', html, re.S)
    assert re.search(r'id="first-position-rate">.*?83\.3%.*?5 of 6 judgments', html, re.S)
    assert html.count('class="order"') == 6
    assert "A shown first" in html and "B shown first" in html
    assert html.count('class="consistency disagree"') == 2 and html.count('class="consistency agree"') == 1
    assert "Verdict: [[A]]" in html  # the raw judge text, reply prefix included
    assert "<code>third</code>" in html


def test_everything_from_the_judge_or_the_client_is_escaped(
    browser: TestClient, state: AppState, api_key: str, worker: Worker
) -> None:
    job_id = submit_pairwise(
        state, "default", [with_(PAIR, id="<b>id</b>", question="<img src=x onerror=alert(1)>")]
    )
    worker(lambda conv: "<script>alert('judge')</script>A]]")
    run_job(job_id)
    sign_in(browser, api_key)
    html = browser.get(f"/dashboard/jobs/{job_id}").text
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>id</b>" not in html


def test_item_pages(
    browser: TestClient, state: AppState, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_service, "ITEMS_PER_PAGE", 2)
    job_id = submit_pairwise(state, "default", [with_(PAIR, id=f"item-{i}") for i in range(5)])
    sign_in(browser, api_key)
    last = browser.get(f"/dashboard/jobs/{job_id}?page=3").text
    assert "item-4" in last and "item-3" not in last and "page 3 of 3" in last
    assert "Not judged yet." in last
    assert browser.get(f"/dashboard/jobs/{job_id}?page=4").status_code == 422


def test_long_job_page_shows_stage_and_results(browser: TestClient, api_key: str) -> None:
    response = browser.post(
        PROMPT_OPT_URL, json=prompt_opt_body(), headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 202, response.text
    sign_in(browser, api_key)
    html = browser.get(f"/dashboard/jobs/{response.json()['id']}").text
    assert "prompt_opt" in html and "Results" in html and "Stop reason" in html
    assert "Decide whether the statement is true." in html  # the parameters


def test_static_files(browser: TestClient) -> None:
    css = browser.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert browser.get("/dashboard/static/secrets.txt").status_code == 404


ANSWERS = {"alpha": "a long and detailed answer, with reasons", "beta": "no", "base": "a medium answer"}


def mtbench_judge(conv: Conversation) -> str:
    """Prefers the longer answer (pairwise); grades detailed answers 8, others 3."""
    if "=== Answer A ===" in user_text(conv):
        return longer_answer_judge(conv)
    return "8]]" if "detailed" in user_text(conv) else "3]]"


def submit_run(client: TestClient, run: str, key: str, category: str | None = None) -> list[str]:
    """A pairwise-baseline run and a single-grading run of alpha and beta on two questions, tagged as
    `judge mtbench run` tags them."""
    auth = {"Authorization": f"Bearer {key}"}
    pairs = [
        {
            "id": f"{q}|{m}|base|1",
            "question": f"question {q}",
            "answer_a": ANSWERS[m],
            "answer_b": ANSWERS["base"],
        }
        for m in ("alpha", "beta")
        for q in (81, 82)
    ]
    grades = [
        {"id": f"{q}|{m}|1", "question": f"question {q}", "answer": ANSWERS[m]}
        for m in ("alpha", "beta")
        for q in (81, 82)
    ]
    tags = {
        "mtbench_run": run,
        "mtbench_judge": "SmolLM2-135M-Instruct",
        **({"category": category} if category else {}),
    }
    ids = []
    for url, items in ((PAIRWISE, pairs), (SINGLE_URL, grades)):
        response = client.post(url, json={"items": items, "metadata": tags}, headers=auth)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def test_leaderboard_of_an_mtbench_run(
    browser: TestClient, state: AppState, api_key: str, worker: Worker
) -> None:
    pairwise_job, _ = submit_run(browser, "run-1", api_key)
    other_key = make_key(state, "other-team", "judge")
    submit_run(browser, "their-run", other_key)
    sign_in(browser, api_key)

    pending = browser.get("/dashboard/leaderboard?run=run-1").text
    assert "No judgments of this run are finished yet." in pending and "8 item(s) not judged yet" in pending

    worker(mtbench_judge)
    assert run_job(pairwise_job) == "done"  # the single-grading job is fused into the same batches

    html = browser.get("/dashboard/leaderboard?run=run-1").text
    single = re.search(r'<table class="board" id="single-board">(.*?)</table>', html, re.S)
    pairwise = re.search(r'<table class="board" id="pairwise-board">(.*?)</table>', html, re.S)
    assert single and pairwise, html
    cells = [
        re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", single.group(1), re.S)
    ]
    assert cells[:6] == ["1", "alpha", "8.00", "8.00", "2", "0"] and cells[6:8] == ["2", "beta"]
    rows = re.findall(r"<tr>(.*?)</tr>", pairwise.group(1).split("<tbody>")[1], re.S)
    assert len(rows) == 2  # the baseline is not ranked
    assert "alpha" in rows[0] and "100.0%" in rows[0] and "beta" in rows[1] and "0.0%" in rows[1]
    assert "Pairwise against base" in html
    assert re.search(r'id="consistency-rate">.*?100\.0%', html, re.S)
    assert "run-1" in html and "their-run" not in html  # the run picker lists this tenant's runs only

    picker = browser.get("/dashboard/leaderboard").text
    assert '<option value="run-1"' in picker and "their-run" not in picker
    assert browser.get("/dashboard/leaderboard?run=their-run").status_code == 404
    assert browser.get("/dashboard/leaderboard?run=nope").status_code == 404


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_jobs_list_shows_metadata_and_filters_by_it(browser: TestClient, api_key: str) -> None:
    ids = {}
    for team, run in (("red", "r1"), ("red", "r2"), ("blue", "r1")):
        body = {"items": [PAIR], "metadata": {"team": team, "run": run}}
        ids[(team, run)] = browser.post(PAIRWISE, json=body, headers=_auth(api_key)).json()["id"]
    sign_in(browser, api_key)
    html = browser.get("/dashboard").text
    assert 'href="/dashboard?metadata=run%3Dr1"' in html  # a chip is a link to its filter
    red = browser.get("/dashboard?metadata=team%3Dred").text
    assert ids[("red", "r1")][:8] in red and ids[("red", "r2")][:8] in red
    assert ids[("blue", "r1")][:8] not in red
    both = browser.get("/dashboard", params={"metadata": "team=red, run=r1"}).text
    assert ids[("red", "r1")][:8] in both and ids[("red", "r2")][:8] not in both
    assert 'value="team=red, run=r1"' in both  # the form keeps what was asked
    assert "No jobs match these filters" in browser.get("/dashboard?metadata=team%3Dgreen").text
    bad = browser.get("/dashboard?metadata=team:red")
    assert bad.status_code == 422 and "is not `key=value`" in bad.text
    page = browser.get(f"/dashboard/jobs/{ids[('blue', 'r1')]}").text
    assert re.search(r'id="job-metadata">.*run=<strong>r1</strong>.*team=<strong>blue</strong>', page, re.S)


def test_a_pasted_short_id_opens_its_job(browser: TestClient, state: AppState, api_key: str) -> None:
    mine = [submit_pairwise(state, "default", [PAIR]) for _ in range(17)]
    theirs = submit_pairwise(state, "other-team", [PAIR])
    sign_in(browser, api_key)
    job = mine[0]
    for pasted in (job[:8], job[:8].upper(), f"  {job[:13]} ", job):
        response = browser.get("/dashboard/find", params={"id": pasted}, follow_redirects=False)
        assert response.status_code == 303, pasted
        assert response.headers["location"] == f"/dashboard/jobs/{job}"
    # A short id in the address works too, and keeps the page's query.
    response = browser.get(f"/dashboard/jobs/{job[:8]}?only=error", follow_redirects=False)
    assert response.headers["location"] == f"/dashboard/jobs/{job}?only=error"
    # 17 ids: two of them start with the same hex digit.
    firsts = [j[0] for j in mine]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    ambiguous = browser.get("/dashboard/find", params={"id": shared})
    assert ambiguous.status_code == 422
    assert f"more than one job id starts with &#39;{shared}&#39;: paste more of the id" in ambiguous.text
    other = browser.get("/dashboard/find", params={"id": theirs[:8]})
    assert other.status_code == 404 and f"no job id starts with &#39;{theirs[:8]}&#39;" in other.text
    bad = browser.get("/dashboard/find", params={"id": "not-an-id"})
    assert bad.status_code == 422 and "is not a job id" in bad.text


def test_failed_items_and_a_failed_job_are_visible(
    browser: TestClient, state: AppState, api_key: str, worker: Worker
) -> None:
    def judge(conv: Conversation) -> str:
        return "no verdict here" if "broken" in user_text(conv) else "A]]"

    job_id = submit_pairwise(
        state,
        "default",
        [PAIR, with_(PAIR, id="bad-1", question="broken"), with_(PAIR, id="bad-2", question="broken")],
    )
    worker(judge)
    run_job(job_id)
    sign_in(browser, api_key)
    listing = browser.get("/dashboard").text
    assert "2 failed" in listing and 'class="bar-failed"' in listing
    # One judged item in blue (a third of the bar), two failed ones in red after it.
    assert re.search(
        r'class="bar-ok" x="0" y="0" width="33\.333".*class="bar-failed" x="33\.333" y="0" width="66\.667"',
        listing,
        re.S,
    )
    page = browser.get(f"/dashboard/jobs/{job_id}").text
    assert "2 of 3 item(s) failed" in page and 'href="?only=error"' in page
    failed_only = browser.get(f"/dashboard/jobs/{job_id}?only=error").text
    assert failed_only.count('<article class="item"') == 2 and "2 of 3 items" in failed_only

    # A job whose every item failed ends failed, with the reason.
    ended = submit_pairwise(
        state, "default", [with_(PAIR, id=f"bad-{i}", question=f"broken {i}") for i in range(2)]
    )
    run_job(ended)
    listing = browser.get("/dashboard").text
    row = re.search(
        rf'<tr class="job-row job-failed">\s*<td><a href="/dashboard/jobs/{ended}"(.*?)</tr>', listing, re.S
    )
    assert row and "all 2 items failed" in row.group(1) and "status-failed" in row.group(1)
    assert 'class="bar-ok" x="0" y="0" width="0.000"' in row.group(1) and "2 failed" in row.group(1)
    page = browser.get(f"/dashboard/jobs/{ended}").text
    assert "This job failed:</strong> all 2 items failed: " in page


def test_items_filtered_by_consistency_error_and_verdict(
    browser: TestClient, state: AppState, api_key: str, worker: Worker
) -> None:
    def judge(conv: Conversation) -> str:
        text = user_text(conv)
        if "broken" in text:
            return "nothing"
        if "fair" in text:
            return "A]]" if "=== Answer A ===\n4\n" in text else "B]]"
        return first_position_judge(conv)

    job_id = submit_pairwise(
        state,
        "default",
        [
            with_(PAIR, id="biased"),
            with_(PAIR, id="fair", question="fair: 2+2?"),
            with_(PAIR, id="err", question="broken"),
        ],
    )
    worker(judge)
    run_job(job_id)
    sign_in(browser, api_key)

    def shown(query: str) -> list[str]:
        response = browser.get(f"/dashboard/jobs/{job_id}?{query}")
        assert response.status_code == 200, response.text
        return re.findall(
            r'<article class="item" id="item-\d+">\s*<header>.*?<code>(.*?)</code>', response.text, re.S
        )

    assert shown("") == ["biased", "fair", "err"]
    assert shown("only=inconsistent") == ["biased"]
    assert shown("only=error") == ["err"]
    assert shown("verdict=A") == ["fair"]
    assert shown("verdict=tie") == ["biased"]
    assert shown("only=error&verdict=A") == []
    assert "No items match this filter." in browser.get(f"/dashboard/jobs/{job_id}?verdict=B").text
    # The figures stay those of every item.
    assert re.search(
        r'id="consistency-rate">.*?50\.0%', browser.get(f"/dashboard/jobs/{job_id}?verdict=A").text, re.S
    )
    bad = browser.get(f"/dashboard/jobs/{job_id}?verdict=C")
    assert bad.status_code == 422 and "verdict must be one of A, B, tie" in bad.text


def test_job_page_charts_its_summary(
    browser: TestClient, state: AppState, api_key: str, worker: Worker
) -> None:
    items = [with_(PAIR, id=f"q{i}", answer_a=f"{'long ' * i}answer") for i in range(4)]
    body = {"items": items, "metadata": {"model_a": "alpha", "model_b": "beta"}}
    pairwise = browser.post(PAIRWISE, json=body, headers=_auth(api_key)).json()["id"]
    grades = [{"question": "q", "answer": a} for a in ("detailed one", "detailed two", "short")]
    single = browser.post(SINGLE_URL, json={"items": grades}, headers=_auth(api_key)).json()["id"]
    worker(mtbench_judge)
    run_job(pairwise)
    sign_in(browser, api_key)
    html = browser.get(f"/dashboard/jobs/{pairwise}").text
    summary = browser.get(f"/v1/jobs/{pairwise}/summary", headers=_auth(api_key)).json()
    alpha = next(r for r in summary["win_rates"] if r["model"] == "alpha")
    chart = re.search(r'<figure class="chart" id="win-rate-chart">(.*?)</figure>', html, re.S)
    assert chart, html
    low, high = (f"{100 * alpha['win_rate_interval'][k]:.1f}%" for k in ("low", "high"))
    assert f"alpha: {100 * alpha['win_rate']:.1f}% [{low}, {high}]" in chart.group(1)
    assert chart.group(1).count('class="whisker"') == 2  # alpha and beta
    assert 'id="tie-adjusted-chart"' in html and "95 % bootstrap intervals" in html

    html = browser.get(f"/dashboard/jobs/{single}").text
    assert re.search(r'id="score-chart">.*A: 6\.33 \[', html, re.S)  # (8 + 8 + 3) / 3
    hist = re.search(r'<figure class="chart" id="score-histogram">(.*?)</figure>', html, re.S)
    # Every point of the job's scale (1 to 10 by default).
    counts = {str(p): "0" for p in range(1, 11)} | {"3": "1", "8": "2"}
    assert hist and re.findall(r'data-label="(\d+)" data-count="(\d+)"', hist.group(1)) == list(
        counts.items()
    )


def test_leaderboard_opens_on_the_newest_run_with_its_charts(
    browser: TestClient, state: AppState, api_key: str, worker: Worker
) -> None:
    submit_run(browser, "older-run", api_key)
    newest = submit_run(browser, "newer-run", api_key, category="writing")
    worker(mtbench_judge)
    for job_id in newest:
        run_job(job_id)
    sign_in(browser, api_key)
    html = browser.get("/dashboard/leaderboard").text
    assert '<option value="newer-run" selected>' in html and 'id="pairwise-board"' in html
    assert 'id="win-rate-chart"' in html and 'id="score-chart"' in html
    categories = re.search(r'id="category-charts"(.*?)</section>', html, re.S)
    assert categories and "Category: writing" in categories.group(1)
    histograms = re.search(r'id="score-histograms"(.*?)</section>', html, re.S)
    assert histograms and histograms.group(1).count("<figure") == 2  # alpha, beta
    assert '<option value="older-run" selected>' in browser.get("/dashboard/leaderboard?run=older-run").text


def test_self_reward_page_charts_its_iterations(browser: TestClient, state: AppState, api_key: str) -> None:
    job = browser.post("/v1/jobs/self-reward", json={}, headers=_auth(api_key)).json()
    # What the worker records after each stage (app/self_reward/driver.py).
    with state.db.unit_of_work() as session:
        sr_repo.save_iteration(
            session,
            uuid.UUID(job["id"]),
            0,
            metrics={"training": {"kind": "sft", "loss_history": [2.1, 1.7, 1.4]}},
        )
        sr_repo.save_iteration(
            session,
            uuid.UUID(job["id"]),
            1,
            metrics={
                "score_histogram": {"0": 0, "1": 0, "2": 1, "3": 3, "4": 4, "5": 2},
                "pairs": {"kept": 5, "prompts": 8, "tie_dropped": 3},
                "training": {"kind": "dpo", "loss_history": [0.69, 0.61]},
                "evaluation": {"win_rate_vs_previous": {"win_rate": 0.75, "n": 8, "errors": 0}},
            },
        )
    sign_in(browser, api_key)
    html = browser.get(f"/dashboard/jobs/{job['id']}").text
    loss = re.search(r'id="loss-chart">(.*?)</figure>', html, re.S)
    assert loss and loss.group(1).count("<polyline") == 2 and "iteration 1 (DPO)" in loss.group(1)
    assert re.search(r'id="pairs-chart">.*iteration 1 \(of 8\): 5<', html, re.S)
    assert re.search(r'id="win-rate-chart">.*iteration 1: 75\.0%', html, re.S)
    hist = re.search(r'id="score-histogram-0">(.*?)</figure>', html, re.S)
    assert hist and 'data-label="4" data-count="4"' in hist.group(1)


def test_prompt_optimization_page_diffs_the_best_prompt_and_tables_the_candidates(
    browser: TestClient, api_key: str, worker: Worker
) -> None:
    response = browser.post(PROMPT_OPT_URL, json=po_job.body(), headers=_auth(api_key))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    worker(po_job.scripted)
    assert run_job(job_id) == "succeeded"
    results = browser.get(f"/v1/jobs/{job_id}/results", headers=_auth(api_key)).json()
    sign_in(browser, api_key)
    html = browser.get(f"/dashboard/jobs/{job_id}").text
    diff = re.search(r'<pre class="raw diff" id="prompt-diff">(.*?)</pre>', html, re.S)
    assert diff, html
    # What the search added to the initial prompt, in place; the rest unchanged.
    assert diff.group(1) == po_job.INITIAL.replace(
        "negative.\n", "negative.<ins> Pay attention to: irony, negation, sarcasm.</ins>\n", 1
    )
    assert results["best_prompt"] == re.sub(r"</?ins>", "", diff.group(1))
    table = re.search(r'<table class="board candidates" id="candidates">(.*?)</table>', html, re.S)
    assert table and table.group(1).count("<tr") == len(results["candidates"]) + 1
    assert f'<code>{results["best_key"]}</code> <span class="status status-ok">best</span>' in table.group(1)
    assert re.search(
        r'<table class="board" id="evaluation">.*<td>test</td><td>initial</td>.*0\.250', html, re.S
    )
    assert '"origin"' not in html  # not the raw JSON


def test_a_jury_jobs_page_shows_its_judge_agreement_matrix(
    browser: TestClient, state: AppState, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [DEFAULT_MODEL, jury_tests.OTHER, jury_tests.THIRD]
    with state.db.unit_of_work() as session:
        for name in models[1:]:
            models_repo.upsert(session, name, "transformers", None)
    items = [
        {"question": "q1", "answer_a": "a long answer", "answer_b": "short"},
        {"question": "q2", "answer_a": "short", "answer_b": "a long answer"},
    ]
    jury = browser.post(PAIRWISE, json={"items": items, "judges": models}, headers=_auth(api_key)).json()
    replies = {
        DEFAULT_MODEL: longer_answer_judge,
        models[1]: longer_answer_judge,
        models[2]: first_position_judge,
    }
    members = []
    for model in models:
        (delivered,) = Queue(queue_name(model), connection=state.redis).job_ids
        members.append(delivered.rsplit("_", 1)[0])
        jury_tests.run_as(state, model, replies[model], members[-1], monkeypatch)
    panel = browser.get(f"/v1/jobs/{jury['id']}/summary", headers=_auth(api_key)).json()["jury"]
    sign_in(browser, api_key)
    html = browser.get(f"/dashboard/jobs/{jury['id']}").text
    section = re.search(r'<section class="card" id="agreement">(.*?)</section>', html, re.S)
    assert section, html
    header = re.findall(r'<th scope="col">(.*?)</th>', section.group(1))
    assert header == models
    cells = [
        re.findall(r'<td class="kappa kappa-[^"]+"[^>]*>(.*?)</td>', row)
        for row in re.findall(r'<tr><th scope="row">.*?</tr>', section.group(1), re.S)
    ]
    kappa = {(k["judge_a"], k["judge_b"]): k["kappa"] for k in panel["cohen_kappa"]}
    for i, a in enumerate(models):
        for j, b in enumerate(models):
            value = 1.0 if a == b else kappa.get((a, b), kappa.get((b, a)))
            assert cells[i][j] == (f"{value:.2f}" if value is not None else "—"), (a, b)
    assert cells[0][1] == "1.00"  # the two judges that prefer the longer answer
    fleiss = f"{panel['fleiss_kappa']:.2f}" if panel["fleiss_kappa"] is not None else "undefined"
    assert f"Fleiss' κ over all judges: <strong>{fleiss}</strong>" in section.group(1)
    judges_table = re.search(r'id="jury-judges">(.*?)</table>', section.group(1), re.S)
    assert judges_table and "100.0%" in judges_table.group(1)  # the third judge's first-position rate
    # A judge's member job is reached through its jury, not by its own id's prefix.
    found = browser.get("/dashboard/find", params={"id": jury["id"][:12]}, follow_redirects=False)
    assert found.headers["location"] == f"/dashboard/jobs/{jury['id']}"
    assert browser.get("/dashboard/find", params={"id": members[1][:12]}).status_code == 404
    # Each item shows every judge's own verdict.
    first = re.search(r'<article class="item" id="item-0">(.*?)</article>', html, re.S)
    assert first
    jurors = re.findall(
        r'<tr><td>(.*?)</td>.*?<td class="juror-verdict">(?:<strong>(.*?)</strong>)?', first.group(1), re.S
    )
    assert [(m.split(" ")[0], v) for m, v in jurors] == list(zip(models, ["A", "A", "tie"], strict=True))
