"""Summaries of ended jobs, remembered: an ended job's items no longer change, so the figures of the
same jobs with the same options are the same (the bootstrap is seeded). A dashboard page or a client
polling a finished run's summary then costs one read of the jobs, not a read of every item and up to
a second of bootstrap refits per view."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence

from app.db.tables import Job
from app.jobs import repository as jobs_repo
from app.summaries.schemas import SummaryOut

# Summaries kept per API process (a summary of a few dozen jobs is a few kB to tens of kB).
DEFAULT_SIZE = 128


def ended_key(jobs: Sequence[Job], *options: Hashable) -> Hashable | None:
    """What identifies the summary of ``jobs`` (each one's id, end and metadata) with ``options``; None
    while any of them is still running (its figures move)."""
    if any(job.status not in jobs_repo.TERMINAL for job in jobs):
        return None
    ended = tuple(
        sorted(
            (job.id, job.status, job.progress_done, job.progress_failed, _labels(job.job_metadata))
            for job in jobs
        )
    )
    return (ended, *options)


def _labels(metadata: dict[str, str] | None) -> str:
    return json.dumps(metadata or {}, sort_keys=True)


class SummaryCache:
    """A bounded, thread-safe map from :func:`ended_key` to the summary (least recently used dropped)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._size = size
        self._kept: OrderedDict[Hashable, SummaryOut] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable | None) -> SummaryOut | None:
        if key is None:
            return None
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, key: Hashable | None, summary: SummaryOut) -> None:
        if key is None:
            return
        with self._lock:
            self._kept[key] = summary
            self._kept.move_to_end(key)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)
