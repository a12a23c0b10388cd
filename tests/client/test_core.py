"""The client's I/O-free core: retry decisions, error mapping, request bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from judge_client import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidArgument,
    Job,
    JudgeError,
    NotFound,
    PairwiseItem,
    RateLimited,
    ServerError,
    SingleItem,
    Unauthorized,
    Unavailable,
)
from judge_client._flows import apply_event
from judge_client._payloads import item_body, judging_body, one_item, options_body
from judge_client._protocol import HttpResponse, RetryPolicy, ServerEvent, TransportFailure
from judge_client._sse import EventDecoder
from judge_client._transport import DEFAULT_URL, Connection
from judge_client.errors import error_from_response, parse_retry_after


def _response(status: int, retry_after: str | None = None) -> HttpResponse:
    return HttpResponse(status, {"retry-after": retry_after} if retry_after else {}, b"")


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert RetryPolicy(backoff=1.0).delay(0, _response(status)) is not None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500, 501])
def test_other_statuses_are_not(status: int) -> None:
    assert RetryPolicy().delay(0, _response(status, "1")) is None


def test_backoff_grows_with_jitter_and_stops_after_the_retries() -> None:
    policy = RetryPolicy(retries=3, backoff=1.0, max_backoff=3.0)
    failure = TransportFailure(OSError("refused"))
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 3.0)]:
        delay = policy.delay(attempt, failure)
        assert delay is not None and ceiling / 2 <= delay <= ceiling
    assert policy.delay(3, failure) is None


def test_retry_after_wins_and_a_too_long_one_is_not_waited() -> None:
    policy = RetryPolicy(backoff=10.0, max_retry_after=60)
    assert policy.delay(0, _response(503, "2")) == 2.0
    assert policy.delay(0, _response(429, "61")) is None


def test_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (413, BadRequest),
        (422, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (429, RateLimited),
        (500, ServerError),
        (503, Unavailable),
        (405, JudgeError),
    ],
)
def test_error_classes_by_status(status: int, cls: type[JudgeError]) -> None:
    body = b'{"error": {"type": "t", "message": "what went wrong", "field": "items[0].answer_a"}}'
    error = error_from_response(status, body, {})
    assert type(error) is cls
    assert (error.status, error.type, error.field) == (status, "t", "items[0].answer_a")
    assert str(error) == f"HTTP {status}: what went wrong"


def test_error_without_the_error_shape_keeps_the_body() -> None:
    assert str(error_from_response(502, b"Bad Gateway from nginx", {})) == "HTTP 502: Bad Gateway from nginx"
    assert str(error_from_response(404, b'{"detail": "Not Found"}', {})) == "HTTP 404: Not Found"


def test_one_item_shapes() -> None:
    assert one_item("pairwise", "q", ("a", "b"), "ref", None, "x") == PairwiseItem(
        id="x", question="q", answer_a="a", answer_b="b", reference="ref"
    )
    assert one_item("single", ["t1", "t2"], (["a1", "a2"],), ["r1", "r2"], 1, None) == SingleItem(
        turns=["t1", "t2"], answers=["a1", "a2"], references=["r1", "r2"], turn=1
    )
    with pytest.raises(ValueError, match="each answer as a string"):
        one_item("pairwise", "q", (["a"], "b"), None, None, None)
    with pytest.raises(ValueError, match="one reference per turn"):
        one_item("single", ["t"], (["a"],), "r", None, None)


def test_options_body() -> None:
    assert options_body("pairwise", {"swap": "random", "auto_reference": True, "seed": 3, "model": None}) == {
        "swap": "random",
        "reference": {"auto": True},
        "seed": 3,
    }
    assert options_body("single", {"scale": (0, 5), "auto_reference": False}) == {
        "scale": {"min": 0, "max": 5}
    }
    assert options_body("single", {"samples": 5, "temperature": 0.7}) == {"samples": 5, "temperature": 0.7}
    with pytest.raises(ValueError, match="scale applies to single"):
        options_body("pairwise", {"scale": (1, 10)})
    with pytest.raises(ValueError, match="unknown option"):
        options_body("pairwise", {"temprature": 0.5})
    with pytest.raises(ValueError, match="kind must be"):
        judging_body("triple", [{}], {})  # type: ignore[arg-type]


def test_client_side_errors_are_judge_errors_and_value_errors() -> None:
    cases = [
        lambda: judging_body("pairwise", [], {}),
        lambda: options_body("pairwise", {"temprature": 0.5}),
        lambda: options_body("single", {"scale": 10}),
        lambda: item_body("pairwise", 42),  # type: ignore[arg-type]
        lambda: one_item("pairwise", "q", ("a", "b"), None, "first", None),  # type: ignore[arg-type]
        lambda: Connection.of("127.0.0.1:8000", None, 30, 3, 0.5),
        lambda: Connection.of(None, None, 0, 3, 0.5),
    ]
    for case in cases:
        with pytest.raises(InvalidArgument) as caught:
            case()
        assert isinstance(caught.value, JudgeError) and isinstance(caught.value, ValueError)


def test_url_and_key_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUDGE_URL", raising=False)
    monkeypatch.delenv("JUDGE_API_KEY", raising=False)
    assert (Connection.of(None, None, 30, 3, 0.5).url, Connection.of(None, None, 30, 3, 0.5).key) == (
        DEFAULT_URL,
        None,
    )
    monkeypatch.setenv("JUDGE_URL", "https://judge.example/")
    monkeypatch.setenv("JUDGE_API_KEY", "jk_env")
    conn = Connection.of(None, None, 30, 3, 0.5)
    assert (conn.url, conn.key) == ("https://judge.example", "jk_env")
    given = Connection.of("http://127.0.0.1:9", "jk_given", 30, 3, 0.5)
    assert (given.url, given.key) == ("http://127.0.0.1:9", "jk_given")
    assert Connection.of(None, "", 30, 3, 0.5).key == ""  # an empty key: send none, whatever the environment


def _events(text: str) -> list[ServerEvent]:
    decoder = EventDecoder()
    return [e for line in text.split("\n") if (e := decoder.feed(line)) is not None]


def test_event_stream_lines_become_events() -> None:
    text = (
        "retry: 3000\n\n"
        ": keep-alive\n\n"
        'id: 1-0\nevent: state\ndata: {"a": 1}\n\n'
        "event: progress\ndata:first\ndata:  second\n\n"
        "event: nothing\n\n"
        "id: 2-0\ndata: plain\n\n"
        "event: cut\ndata: never ended"
    )
    assert _events(text) == [
        ServerEvent("state", '{"a": 1}', "1-0"),
        ServerEvent("progress", "first\n second", "1-0"),  # the last id seen goes on
        ServerEvent("message", "plain", "2-0"),
    ]


def _job(**fields: object) -> Job:
    base = {
        "id": "j1",
        "kind": "judge_pairwise",
        "status": "queued",
        "model": "m",
        "progress": {"done": 0, "total": 4},
        "created_at": "2026-01-01T00:00:00Z",
    }
    return Job.model_validate({**base, **fields})


def test_job_events_update_the_job() -> None:
    state = _job(params={"ignored": True}).model_dump(mode="json", exclude={"params"})
    job = apply_event(None, ServerEvent("state", json.dumps(state)))
    assert job is not None and (job.status, job.progress.total, job.params) == ("queued", 4, {})
    job = apply_event(job, ServerEvent("status", '{"status": "running", "attempts": 1}'))
    assert job is not None and (job.status, job.attempts) == ("running", 1)
    job = apply_event(job, ServerEvent("progress", '{"done": 3, "total": 4}'))
    assert job is not None and (job.progress.done, job.progress.total) == (3, 4)
    job = apply_event(job, ServerEvent("stage", '{"stage": "judging"}'))
    assert job is not None and job.stage == "judging"
    end = '{"status": "failed", "error": "boom", "progress": {"done": 4, "total": 4, "failed": 4}}'
    ended = apply_event(job, ServerEvent("end", end))
    assert ended is not None and (ended.status, ended.error, ended.progress.failed, ended.ended) == (
        "failed",
        "boom",
        4,
        True,
    )
    assert apply_event(job, ServerEvent("something-new", "{}")) is job
    assert apply_event(job, ServerEvent("progress", "not json")) is None
    assert apply_event(None, ServerEvent("progress", '{"done": 1}')) is None
    assert apply_event(job, ServerEvent("status", '{"status": "exploded"}')) is None
