"""Recently checked API keys, so a client's stream of requests does not look its key up in the database
every time. Only successful checks are kept, for ``ttl_seconds``: a new key works at once, and a revoked
key stops working within that time."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.auth import keys
from app.auth.service import Principal


class PrincipalCache:
    """Principals by key digest (the token itself is not kept), each for ``ttl_seconds``; 0 keeps none.
    Safe to share between threads (one dict operation at a time)."""

    def __init__(
        self, ttl_seconds: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str) -> Principal | None:
        if self.ttl_seconds <= 0:
            return None
        entry = self._entries.get(keys.digest(token))
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl_seconds <= 0:
            return
        now = self._clock()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
            if len(self._entries) >= self.max_entries:
                self._entries = {}
        self._entries[keys.digest(token)] = (principal, now + self.ttl_seconds)

    def clear(self) -> None:
        self._entries = {}
