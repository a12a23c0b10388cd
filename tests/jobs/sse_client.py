"""A small Server-Sent Events client for tests: parses whole bodies or reads a live stream line by line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    name: str
    data: Any
    id: str | None


@dataclass
class EventReader:
    """Reads events off an iterator of lines (``httpx.Response.iter_lines()``); comments are kept."""

    lines: Iterator[str]
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    def next(self) -> Event | None:
        """The next event, or None when the stream ended."""
        fields: dict[str, str] = {}
        for line in self.lines:
            if line == "":
                if "data" in fields:
                    return Event(fields.get("event", "message"), json.loads(fields["data"]), fields.get("id"))
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = int(value)
            elif name == "data" and "data" in fields:
                fields["data"] += "\n" + value
            else:
                fields[name] = value
        return None

    def rest(self) -> list[Event]:
        events = []
        while (event := self.next()) is not None:
            events.append(event)
        return events


def parse(text: str) -> list[Event]:
    return EventReader(iter(text.split("\n"))).rest()
