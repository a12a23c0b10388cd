"""What the API shows of a job's webhook deliveries."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.jobs import service as jobs_service
from app.webhooks import repository as webhooks_repo
from app.webhooks.schemas import DeliveryAttemptOut, DeliveryList, DeliveryOut


def deliveries(session: Session, job_id: uuid.UUID, tenant: str) -> DeliveryList:
    """The job's callback deliveries with every attempt (NotFound for another tenant's job)."""
    job = jobs_service.get_job(session, job_id, tenant)
    delivery = webhooks_repo.for_job(session, job.id)
    if delivery is None:
        return DeliveryList(job_id=job.id, deliveries=[])
    attempts = [
        DeliveryAttemptOut.model_validate(attempt, from_attributes=True)
        for attempt in webhooks_repo.attempts_of(session, delivery.id)
    ]
    out = DeliveryOut(
        event_id=delivery.id,
        url=delivery.url,
        status=delivery.status,  # type: ignore[arg-type]  # the column holds these three
        attempts=attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )
    return DeliveryList(job_id=job.id, deliveries=[out])
