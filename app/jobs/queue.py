"""Delivery of job ids to workers through RQ (one queue per served model), and job-end events.

RQ only delivers; the job row in the database is the truth about a job's state.
"""

from __future__ import annotations

import re
import uuid

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus

RUN_JOB = "workers.tasks.run_job"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def queue_name(model: str) -> str:
    """The RQ queue a model's workers listen on."""
    return "judge." + _UNSAFE.sub("_", model)


def delivery_id(job_id: uuid.UUID | str, attempt: int) -> str:
    return f"{job_id}_{attempt}"


def job_channel(job_id: uuid.UUID | str) -> str:
    """The pub/sub channel a worker publishes on when a job ends (for `?wait=`)."""
    return f"judge:job-ended:{job_id}"


class JobQueue:
    def __init__(self, redis: Redis, job_timeout_seconds: int) -> None:
        self.redis = redis
        self.job_timeout_seconds = job_timeout_seconds

    def enqueue(self, job_id: uuid.UUID, queue: str, attempt: int = 0) -> None:
        """Deliver a job id to its model's workers. ``attempt`` (the job's claims so far) makes the
        delivery id unique per attempt, so a re-delivery never collides with a finished one."""
        Queue(queue, connection=self.redis).enqueue(
            RUN_JOB,
            str(job_id),
            job_id=delivery_id(job_id, attempt),
            job_timeout=self.job_timeout_seconds,
            # Results live in the database; RQ's copies only need to outlive a retry.
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            description=f"job {job_id}",
        )

    def is_delivery_pending(self, job_id: uuid.UUID, attempt: int) -> bool:
        """Whether RQ still holds an undelivered or running delivery of this attempt."""
        try:
            rq_job = RQJob.fetch(delivery_id(job_id, attempt), connection=self.redis)
        except NoSuchJobError:
            return False
        status = rq_job.get_status(refresh=False)
        return status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED)

    def publish_ended(self, job_id: uuid.UUID, status: str) -> None:
        self.redis.publish(job_channel(job_id), status)
