"""The sync client against the real service, live on a local port."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from judge_client import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidArgument,
    ItemResult,
    JobFailed,
    Judge,
    JudgeError,
    JudgeTimeout,
    NotFound,
    PairwiseItem,
    SingleItem,
    Unauthorized,
)
from tests.client.live import LiveService, free_port

PAIRS: list[dict[str, Any]] = [
    {"id": "p0", "question": "What is 2+2?", "answer_a": "It is four.", "answer_b": "5"},
    {"id": "p1", "question": "Capital of France?", "answer_a": "Rome", "answer_b": "It is Paris."},
    {"id": "p2", "question": "Name a colour.", "answer_a": "red", "answer_b": "tan"},
]


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def judge(service: LiveService, sent: list[httpx.Request]) -> Iterator[Judge]:
    """A client whose httpx.Client records every request it sends."""
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with Judge(service.url, service.key, http=http) as client:
        yield client
    http.close()


# Judging one item ---------------------------------------------------------------------------


def test_pairwise_returns_the_verdict_with_both_orders(judge: Judge) -> None:
    result = judge.pairwise("What is 2+2?", "It is four.", "5", poll=0.05)
    assert isinstance(result, ItemResult)
    assert (result.ok, result.verdict, result.consistent) == (True, "A", True)
    assert [o.order for o in result.orders] == ["AB", "BA"]
    # The scripted judge prefers the longer answer: shown first (AB) it says A, shown second (BA) it says B,
    # which the service maps back to the caller's label A.
    assert [o.raw for o in result.orders] == ["Verdict: [[A]]", "Verdict: [[B]]"]
    assert [o.verdict for o in result.orders] == ["A", "A"]


def test_pairwise_swap_none_judges_one_order(judge: Judge) -> None:
    result = judge.pairwise("Q?", "short", "a longer answer", swap="none", poll=0.05)
    assert (result.verdict, result.consistent) == ("B", None)
    assert [o.order for o in result.orders] == ["AB"]


def test_pairwise_equal_answers_are_inconsistent(judge: Judge) -> None:
    result = judge.pairwise("Q?", "same", "also", poll=0.05)  # equal length: each order prefers the second
    assert (result.verdict, result.consistent) == ("tie", False)


def test_pairwise_multi_turn(judge: Judge, service: LiveService) -> None:
    result = judge.pairwise(
        ["Name a prime.", "Name a bigger one."],
        ["2", "three is bigger"],
        ["3", "5"],
        turn=2,
        id="mt",
        poll=0.05,
    )
    assert (result.id, result.verdict) == ("mt", "A")
    job = next(judge.jobs())
    assert job.kind == "judge_pairwise"


def test_pairwise_samples_report_votes_and_every_sample(judge: Judge) -> None:
    result = judge.pairwise("What is 2+2?", "It is four.", "5", samples=3, temperature=0.7, poll=0.05)
    assert (result.verdict, result.consistent, result.agreement) == ("A", True, 1.0)
    assert result.votes == {"A": 6, "B": 0, "tie": 0}
    assert [(o.order, o.sample) for o in result.orders] == [(o, s) for o in ("AB", "BA") for s in range(3)]


def test_single_grades_on_the_scale(judge: Judge) -> None:
    result = judge.single("Say hello.", "hello there my friend", scale=(1, 10), poll=0.05)
    assert (result.ok, result.score) == (True, 4.0)
    assert [o.order for o in result.orders] == ["single"]


def test_pairwise_polls_when_the_server_wait_runs_out(
    judge: Judge, service: LiveService, sent: list[httpx.Request], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service.state.settings, "max_wait_seconds", 0.2)
    service.running.clear()
    service.release_when(lambda: any(r.method == "GET" for r in sent))
    result = judge.pairwise("Q?", "a", "bb", id="late", poll=0.05)
    assert (result.id, result.verdict) == ("late", "B")
    post, *gets = sent
    assert post.method == "POST" and float(post.url.params["wait"]) == 600
    assert {r.method for r in gets} == {"GET"} and gets[-1].url.path.endswith("/results")


def test_pairwise_without_wait_returns_the_queued_job(judge: Judge, service: LiveService) -> None:
    service.running.clear()
    job = judge.pairwise("Q?", "a", "bb", wait=False)
    assert (job.status, job.kind, job.progress.total) == ("queued", "judge_pairwise", 1)
    service.running.set()
    ended = judge.wait(job, poll=0.05)
    assert ended.status == "succeeded"
    [result] = judge.results(ended)
    assert result.verdict == "B"


def test_client_side_misuse_is_an_invalid_argument_before_any_request(
    judge: Judge, sent: list[httpx.Request]
) -> None:
    with pytest.raises(InvalidArgument, match="one answer per turn|list of answers"):
        judge.pairwise(["t1", "t2"], "a", "b")
    with pytest.raises(InvalidArgument, match="swap applies to pairwise"):
        judge.submit_batch([{"question": "q", "answer": "a"}], "single", swap="none")
    with pytest.raises(InvalidArgument, match="a SingleItem cannot be judged as pairwise"):
        judge.submit_batch([SingleItem(question="q", answer="a")])
    with pytest.raises(InvalidArgument, match="no items"):
        judge.submit_batch([])
    with pytest.raises(InvalidArgument, match="unknown option"):
        judge.pairwise("q", "a", "b", temprature=0.5)  # type: ignore[call-overload]
    with pytest.raises(InvalidArgument, match="poll must be positive"):
        judge.wait(uuid.uuid4(), poll=0)
    with pytest.raises(JudgeError):  # what a caller catches for every client error
        judge.submit_batch([])
    assert sent == []


def test_url_and_key_come_from_the_environment(service: LiveService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_URL", service.url)
    monkeypatch.setenv("JUDGE_API_KEY", service.key)
    with Judge() as judge:
        assert judge.pairwise("What is 2+2?", "It is four.", "5", poll=0.05).verdict == "A"
    monkeypatch.setenv("JUDGE_API_KEY", "jk_nope_nope")
    with Judge() as judge, pytest.raises(Unauthorized):
        judge.job(uuid.uuid4())


# Batches, waiting and results ---------------------------------------------------------------


def test_batch_wait_and_lazy_paged_results(judge: Judge, sent: list[httpx.Request]) -> None:
    items = [PairwiseItem(**p) for p in PAIRS] + [dict(p, id=f"d{i}") for i, p in enumerate(PAIRS)]
    job = judge.submit_batch(items, "pairwise", swap="conservative")
    assert job.progress.total == 6
    seen: list[tuple[str, int]] = []
    ended = judge.wait(job, poll=0.05, on_update=lambda j: seen.append((j.status, j.progress.done)))
    assert ended.status == "succeeded" and seen[-1] == ("succeeded", 6)
    done = [d for _, d in seen]
    assert done == sorted(done)

    sent.clear()
    results = judge.results(ended, page_size=4)
    assert sent == []  # nothing is fetched before iteration
    first = next(results)
    assert (first.index, first.id, first.verdict) == (0, "p0", "A")
    assert len(sent) == 1
    rest = list(results)
    assert len(sent) == 2 and sent[1].url.params["cursor"]
    assert [r.id for r in [first, *rest]] == ["p0", "p1", "p2", "d0", "d1", "d2"]
    assert [r.verdict for r in [first, *rest]] == ["A", "B", "tie"] * 2


def _events_requests(sent: list[httpx.Request]) -> list[httpx.Request]:
    return [r for r in sent if r.url.path.endswith("/events")]


def test_wait_follows_the_event_stream_instead_of_polling(
    judge: Judge, service: LiveService, sent: list[httpx.Request]
) -> None:
    service.running.clear()
    job = judge.submit_batch(PAIRS * 2)
    seen: list[tuple[str, int]] = []
    sent.clear()
    service.release_when(lambda: bool(_events_requests(sent)), then=0.5)
    ended = judge.wait(job, poll=0.05, on_update=lambda j: seen.append((j.status, j.progress.done)))
    assert (ended.status, ended.progress.done) == ("succeeded", 6)
    # One stream, then one read of the ended job: no polling (at poll=0.05, 0.5 s queued would be ~10 GETs).
    assert [(r.method, r.url.path) for r in sent] == [
        ("GET", f"/v1/jobs/{job.id}/events"),
        ("GET", f"/v1/jobs/{job.id}"),
    ]
    assert sent[0].headers["accept"] == "text/event-stream"
    assert seen[0] == ("queued", 0) and ("running", 0) in seen and seen[-1] == ("succeeded", 6)
    done = [d for _, d in seen]
    assert done == sorted(done)


class _NoEventStreams(httpx.BaseTransport):
    """A service without the event stream (an older release, or a proxy that refuses it)."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(self.status, json={"detail": "Not Found"})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("status", [404, 502, 200])  # 200: JSON, not an event stream
def test_wait_polls_where_the_event_stream_is_unavailable(
    service: LiveService, sent: list[httpx.Request], status: int
) -> None:
    http = httpx.Client(transport=_NoEventStreams(status), event_hooks={"request": [sent.append]})
    with Judge(service.url, service.key, http=http, retries=0) as judge:
        service.running.clear()
        job = judge.submit_batch(PAIRS)
        sent.clear()
        service.release_when(lambda: len([r for r in sent if r.url.path == f"/v1/jobs/{job.id}"]) >= 3)
        assert judge.wait(job, poll=0.05, timeout=30).status == "succeeded"
    http.close()
    assert len(_events_requests(sent)) == 1
    polls = [r for r in sent if r.url.path == f"/v1/jobs/{job.id}"]
    assert len(polls) >= 3


def test_wait_polls_when_the_event_stream_drops(
    judge: Judge, service: LiveService, sent: list[httpx.Request], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.jobs import event_stream

    async def cut_short(*args: Any, **kwargs: Any) -> Any:
        yield "retry: 3000\n\n"  # then the server ends the stream before the job's end

    monkeypatch.setattr(event_stream, "follow", cut_short)
    service.running.clear()
    job = judge.submit_batch(PAIRS)
    sent.clear()
    service.release_when(lambda: len([r for r in sent if r.url.path == f"/v1/jobs/{job.id}"]) >= 3)
    assert judge.wait(job, poll=0.05, timeout=30).status == "succeeded"
    assert len(_events_requests(sent)) == 1
    assert len([r for r in sent if r.url.path == f"/v1/jobs/{job.id}"]) >= 3


def test_submit_with_wait_uses_the_server_side_wait(judge: Judge, sent: list[httpx.Request]) -> None:
    job = judge.submit_batch(PAIRS, wait=30)
    assert job.status == "succeeded" and job.results is not None
    assert sent[0].url.params["wait"] == "30"
    sent.clear()
    assert [r.id for r in judge.results(job)] == ["p0", "p1", "p2"]
    assert sent == []  # the results came with the job


def test_every_creating_post_has_its_own_idempotency_key(judge: Judge, sent: list[httpx.Request]) -> None:
    judge.submit_batch(PAIRS[:1])
    judge.submit_batch(PAIRS[:1])
    judge.pairwise("Q?", "a", "bb", poll=0.05)
    keys = [r.headers.get("Idempotency-Key") for r in sent if r.method == "POST"]
    assert len(keys) == 3 and all(keys) and len(set(keys)) == 3
    assert all(r.headers.get("Idempotency-Key") is None for r in sent if r.method == "GET")


def test_wait_times_out_and_the_job_goes_on(judge: Judge, service: LiveService) -> None:
    service.running.clear()
    job = judge.submit_batch(PAIRS)
    started = time.monotonic()
    with pytest.raises(JudgeTimeout, match="still queued") as caught:
        judge.wait(job, timeout=0.3, poll=0.05)
    assert 0.3 <= time.monotonic() - started < 3
    assert caught.value.job.id == job.id and caught.value.job.status == "queued"
    service.running.set()
    assert judge.wait(job, timeout=30, poll=0.05).status == "succeeded"


def test_pairwise_timeout(judge: Judge, service: LiveService) -> None:
    service.running.clear()
    with pytest.raises(JudgeTimeout):
        judge.pairwise("Q?", "a", "bb", timeout=0.3, poll=0.05)


def test_cancel_then_cancel_again_then_conflict_once_ended(judge: Judge, service: LiveService) -> None:
    service.running.clear()
    job = judge.submit_batch(PAIRS)
    assert judge.cancel(job).status == "cancelled"
    assert judge.cancel(job.id).status == "cancelled"
    assert judge.wait(job.id, poll=0.05).status == "cancelled"
    service.running.set()
    done = judge.submit_batch(PAIRS, wait=30)
    with pytest.raises(Conflict, match="already succeeded") as caught:
        judge.cancel(done)
    assert caught.value.status == 409


def test_a_failed_job_raises_job_failed(judge: Judge, service: LiveService) -> None:
    def broken(conv: Any) -> str:
        raise RuntimeError("engine fell over")

    service.engine.reply = broken
    with pytest.raises(JobFailed, match="failed: .*engine fell over") as caught:
        judge.pairwise("Q?", "a", "bb", poll=0.05, timeout=30)
    assert caught.value.job.status == "failed"


def test_jobs_lists_newest_first_across_pages_with_filters(judge: Judge) -> None:
    first = judge.submit_batch(PAIRS[:1], wait=30, metadata={"run": "r1", "team": "eval"})
    assert first.metadata == {"run": "r1", "team": "eval"}
    second = judge.submit_batch([{"question": "q", "answer": "a b"}], "single", wait=30)
    assert [j.id for j in judge.jobs(page_size=1)] == [second.id, first.id]
    assert [j.id for j in judge.jobs(kind="judge_single")] == [second.id]
    assert [j.id for j in judge.jobs(status="queued")] == []
    assert [j.id for j in judge.jobs(metadata={"run": "r1", "team": "eval"})] == [first.id]
    assert [j.id for j in judge.jobs(metadata={"run": "r1", "team": "other"})] == []
    assert judge.job(first.id).progress.done == 1


# Errors -------------------------------------------------------------------------------------


def test_invalid_item_is_bad_request_with_the_field(judge: Judge) -> None:
    with pytest.raises(BadRequest) as caught:
        judge.submit_batch([PAIRS[0], {"question": "q", "answer_a": "a", "answer_b": "b", "turn": 3}])
    error = caught.value
    assert (error.status, error.type, error.field) == (422, "validation_error", "items[1].turn")
    assert "turn 3 was requested but the conversation has 1 turn(s)" in str(error)


def test_too_many_items_and_unknown_options_are_bad_requests(judge: Judge) -> None:
    with pytest.raises(BadRequest, match="at most 50"):
        judge.submit_batch([PAIRS[0]] * 51)
    with pytest.raises(BadRequest, match="unknown template 'nope'") as caught:
        judge.pairwise("q", "a", "b", template="nope")
    assert caught.value.field == "template"


def test_several_validation_problems_are_all_reported(judge: Judge) -> None:
    with pytest.raises(BadRequest) as caught:
        judge.submit_batch([{"question": "q"}, {"answer_a": "a"}])
    assert len(caught.value.details) >= 2
    assert "more problem" in str(caught.value)


def test_unknown_and_malformed_job_ids(judge: Judge) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        judge.job(missing)
    with pytest.raises(NotFound):
        list(judge.results(str(missing)))
    with pytest.raises(BadRequest) as caught:
        judge.job("not-a-uuid")
    assert caught.value.field == "job_id"


def test_another_tenants_job_is_not_found(service: LiveService, judge: Judge) -> None:
    job = judge.submit_batch(PAIRS[:1])
    with (
        Judge(service.url, service.new_key(["judge"], tenant="someone-else")) as other,
        pytest.raises(NotFound),
    ):
        other.job(job)


def test_bad_key_is_unauthorized_and_missing_scope_forbidden(service: LiveService) -> None:
    with Judge(service.url, "jk_nope_nope") as bad, pytest.raises(Unauthorized) as caught:
        bad.jobs().__next__()
    assert caught.value.status == 401 and "HTTP 401" in str(caught.value)
    with Judge(service.url, None) as anonymous, pytest.raises(Unauthorized):
        anonymous.job(uuid.uuid4())
    with Judge(service.url, service.new_key(["jobs"])) as jobs_only, pytest.raises(Forbidden) as denied:
        jobs_only.pairwise("q", "a", "b")
    assert denied.value.status == 403 and "judge" in str(denied.value)


def test_nothing_listening_is_connection_failed_after_the_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with (
        Judge(url, "k", retries=2, backoff=0.05) as judge,
        pytest.raises(ConnectionFailed, match="3 attempt"),
    ):
        judge.job(uuid.uuid4())
    assert time.monotonic() - started < 5


def test_the_package_imports_nothing_from_the_service() -> None:
    code = (
        "import sys, judge_client, judge_client.sync, judge_client.aio\n"
        "service = ('app', 'workers', 'fastapi', 'sqlalchemy')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in service)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Templates --------------------------------------------------------------------------------------


def test_templates_are_listed_created_and_usable_by_ref(judge: Judge, sent: list[httpx.Request]) -> None:
    builtin = judge.templates()
    assert any(t.builtin and t.name == "pairwise" for t in builtin)
    name = f"strict-{uuid.uuid4().hex[:8]}"
    user = "Q: {question}\nA: {answer_a}\nB: {answer_b}\nWhich is better? Answer [[A]], [[B]] or [[C]]."
    first = judge.create_template(name, user, mode="pairwise", description="terse")
    second = judge.create_template(name, user + " Be brief.", mode="pairwise")
    assert (first.version, second.version) == (1, 2) and second.ref == f"{name}@2"
    assert set(first.placeholders) == {"answer_a", "answer_b", "question"}
    mine = [t for t in judge.templates() if t.name == name]
    assert sorted(t.version for t in mine) == [1, 2] and not any(t.builtin for t in mine)
    posts = [r for r in sent if r.method == "POST" and r.url.path == "/v1/templates"]
    assert len(posts) == 2 and len({r.headers["Idempotency-Key"] for r in posts}) == 2
    with pytest.raises(BadRequest) as bad:
        judge.create_template("Bad Name", user, mode="pairwise")
    assert bad.value.field == "name"
    job = judge.pairwise("What is 2+2?", "It is four.", "5", template=first.ref, wait=False)
    assert job.params["template"] == first.ref
    judge.cancel(job)
