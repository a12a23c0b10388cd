"""The Server-Sent Events wire format of job events."""

from __future__ import annotations

from app.jobs import sse
from app.jobs.events import JobEvent
from tests.jobs.sse_client import parse


def test_an_event_has_its_id_name_and_one_line_of_json() -> None:
    text = sse.encode(JobEvent("progress", {"done": 2, "total": 5}, "1700000000000-3"))
    assert text == 'id: 1700000000000-3\nevent: progress\ndata: {"done":2,"total":5}\n\n'


def test_an_event_without_an_id_has_no_id_field() -> None:
    assert sse.encode(JobEvent("end", {"status": "failed"})) == 'event: end\ndata: {"status":"failed"}\n\n'


def test_line_breaks_in_data_never_end_the_event_early() -> None:
    data = {"error": "line one\nline two\r\nthree", "stage": "round 1/6: expand"}
    text = sse.encode(JobEvent("end", data, "5-0"))
    # JSON escapes the breaks, so the data stays one line and decodes back to the same value.
    assert [line for line in text.split("\n") if line.startswith("data:")] == [text.split("\n")[2]]
    [parsed] = parse(text)
    assert (parsed.name, parsed.data, parsed.id) == ("end", data, "5-0")


def test_non_ascii_text_is_sent_as_is() -> None:
    text = sse.encode(JobEvent("stage", {"stage": "étape 1 → 2"}))
    assert "étape 1 → 2" in text
    [parsed] = parse(text)
    assert parsed.data == {"stage": "étape 1 → 2"}


def test_comments_and_retry_are_single_lines_that_clients_skip() -> None:
    assert sse.comment("keep-alive") == ": keep-alive\n\n"
    assert sse.comment("two\nlines") == ": two lines\n\n"
    assert sse.retry(3000) == "retry: 3000\n\n"
    assert parse(sse.comment("keep-alive") + sse.retry(3000)) == []
