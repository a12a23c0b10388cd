"""Reading Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html) line by
line, with no I/O: the drivers feed the lines of a stream, each complete event comes back."""

from __future__ import annotations

from judge_client._protocol import ServerEvent

MEDIA_TYPE = "text/event-stream"


class EventDecoder:
    """Turns the lines of an event stream (line breaks removed) into events: an event ends at an empty
    line; comments (``:``), ``retry`` and unknown fields are skipped; an event without data is none."""

    def __init__(self) -> None:
        self._name = ""
        self._data: list[str] = []
        self._last_id: str | None = None

    def feed(self, line: str) -> ServerEvent | None:
        """The event this line completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> ServerEvent | None:
        name, data = self._name, self._data
        self._name, self._data = "", []
        if not data:
            return None
        return ServerEvent(name or "message", "\n".join(data), self._last_id)
