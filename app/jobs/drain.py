"""Waiting requests (`?wait=`) when the API shuts down.

On SIGTERM uvicorn stops accepting connections, gives open requests ``api_drain_seconds`` to finish,
then cancels the ones left. A cancelled wait would become a bare 500 that does not even name the job
the request recorded; the wait ends instead, and the request answers with its job (202, the id to poll).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Wait:
    cut_short: bool = False
    """The server cancelled the wait (its drain ran out): answer with the job as it is."""


@contextmanager
def ends_on_shutdown() -> Iterator[Wait]:
    """Run a wait that the server may cancel; its cancellation ends the block (``cut_short``)
    instead of the request."""
    wait = Wait()
    try:
        yield wait
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # handled: later awaits of the request (sending its answer) run normally
        wait.cut_short = True
