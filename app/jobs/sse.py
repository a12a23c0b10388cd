"""Server-Sent Events wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

from __future__ import annotations

import json
import re

from app.jobs.events import JobEvent

MEDIA_TYPE = "text/event-stream"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(name: str, value: str) -> str:
    # A line break would end the field early: each line becomes a field of its own (for `data`, the
    # client joins them with "\n" again).
    return "".join(f"{name}: {line}\n" for line in _LINE_BREAK.split(value))


def encode(event: JobEvent) -> str:
    """One event: ``id`` (when it has one), ``event`` and its data as one line of JSON."""
    out = ""
    if event.id is not None:
        out += _field("id", _LINE_BREAK.sub("", event.id))
    out += _field("event", _LINE_BREAK.sub("", event.name))
    out += _field("data", json.dumps(event.data, separators=(",", ":"), ensure_ascii=False))
    return out + "\n"


def comment(text: str) -> str:
    """A comment line, ignored by clients (keeps idle connections and proxies alive)."""
    return f": {_LINE_BREAK.sub(' ', text)}\n\n"


def retry(milliseconds: int) -> str:
    """How long a client waits before reconnecting after the connection drops."""
    return f"retry: {int(milliseconds)}\n\n"
