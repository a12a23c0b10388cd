"""Keeps the leases of the jobs a worker holds fresh, from a background thread."""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType

from app.core.db import Database
from app.jobs import repository as jobs_repo

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Context manager: heartbeats every held job every third of the lease. A job whose lease was
    taken over by another worker (ours had expired) lands in ``lost``, so the runner stops writing."""

    def __init__(self, db: Database, worker_id: str, lease_seconds: float) -> None:
        self.db = db
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self._held: set[uuid.UUID] = set()
        self._lost: set[uuid.UUID] = set()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def hold(self, job_id: uuid.UUID) -> None:
        with self._mutex:
            self._held.add(job_id)

    def release(self, job_id: uuid.UUID) -> None:
        with self._mutex:
            self._held.discard(job_id)
            self._lost.discard(job_id)

    def is_lost(self, job_id: uuid.UUID) -> bool:
        with self._mutex:
            return job_id in self._lost

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._mutex:
                held = list(self._held - self._lost)
            for job_id in held:
                try:
                    with self.db.unit_of_work() as session:
                        ok = jobs_repo.heartbeat(session, job_id, self.worker_id, self.lease_seconds)
                except Exception:
                    log.exception("heartbeat failed for job %s", job_id)
                    continue
                if not ok:
                    with self._mutex:
                        self._lost.add(job_id)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
