"""What a job's callback says, and recording it in the transaction that ends the job."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.db.tables import Job, WebhookDelivery
from app.jobs.events import end_data
from app.webhooks import repository as webhooks_repo

EVENT = "job.ended"


def results_path(job_id: uuid.UUID) -> str:
    return f"/v1/jobs/{job_id}/results"


def payload(job: Job) -> dict[str, Any]:
    """The job as it ended (the body adds the event id and the results URL when it is sent)."""
    return {
        "event": EVENT,
        "job_id": str(job.id),
        "kind": job.kind,
        "metadata": job.job_metadata,
        **end_data(job),
    }


def record(session: Session, job: Job) -> WebhookDelivery | None:
    """The job's callback, to be sent once this transaction commits (None: the job has no callback)."""
    if not job.callback_url:
        return None
    return webhooks_repo.add(session, job_id=job.id, url=job.callback_url, payload=payload(job))


def body(delivery: WebhookDelivery, public_url: str | None) -> bytes:
    """The exact bytes sent (and signed): the recorded payload, the event id and the results URL
    (absolute when the service knows its public URL)."""
    path = results_path(delivery.job_id)
    content = {
        **delivery.payload,
        "event_id": str(delivery.id),
        "results_url": public_url.rstrip("/") + path if public_url else path,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
