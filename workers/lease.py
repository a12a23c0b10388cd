"""Keeps a running job's lease fresh from a background thread."""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType

from app.core.db import Database
from app.jobs import repository as jobs_repo

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Context manager: heartbeats every third of the lease; ``lost`` turns true if another worker
    took the job over (our lease had expired), so the runner stops writing."""

    def __init__(self, db: Database, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> None:
        self.db = db
        self.job_id = job_id
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                with self.db.unit_of_work() as session:
                    held = jobs_repo.heartbeat(session, self.job_id, self.worker_id, self.lease_seconds)
            except Exception:
                log.exception("heartbeat failed for job %s", self.job_id)
                continue
            if not held:
                self.lost.set()
                return

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
