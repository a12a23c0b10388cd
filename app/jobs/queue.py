"""Delivery of job ids to workers through RQ (one queue per served model), and job events (the job-ended
channel of `?wait=`; the live event streams).

RQ only delivers; the job row in the database is the truth about a job's state.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job as RQJob
from rq.job import JobStatus

from app.core.config import Settings
from app.jobs.events import EventLog

RUN_JOB = "workers.tasks.run_job"
# The longest ended job a wake-up message carries; a longer one is read from the database.
MAX_ANNOUNCED_JOB_CHARS = 512 * 1024
# Take each delivery off the queue list and, when it was still there (no worker has taken it), drop its
# RQ job hash too. KEYS[1]: the queue's list; ARGV: the RQ job key prefix, then the delivery ids.
_WITHDRAW = """
local withdrawn = 0
for i = 2, #ARGV do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) > 0 then
    redis.call('DEL', ARGV[1] .. ARGV[i])
    withdrawn = withdrawn + 1
  end
end
return withdrawn
"""
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
    def __init__(self, redis: Redis, job_timeout_seconds: int, events: EventLog | None = None) -> None:
        self.redis = redis
        self.job_timeout_seconds = job_timeout_seconds
        # The jobs' live event streams (GET /v1/jobs/{id}/events), on the same Redis.
        self.events = events if events is not None else EventLog(redis)

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> JobQueue:
        events = EventLog(redis, settings.job_events_max_len, settings.job_events_ttl_seconds)
        return cls(redis, settings.job_timeout_seconds, events)

    def enqueue(self, job_id: uuid.UUID, queue: str, attempt: int = 0) -> None:
        """Deliver a job id to its model's workers. ``attempt`` (the job's claims so far) makes the
        delivery id unique per attempt, so a re-delivery never collides with a finished one."""
        self._enqueue(job_id, queue, delivery_id(job_id, attempt))

    def _enqueue(self, job_id: uuid.UUID, queue: str, rq_id: str) -> None:
        # One round trip: RQ's writes go into our pipeline (on its own, RQ sends two).
        pipe = self.redis.pipeline()
        Queue(queue, connection=self.redis).enqueue(
            RUN_JOB,
            str(job_id),
            job_id=rq_id,
            job_timeout=self.job_timeout_seconds,
            # Results live in the database; RQ's copies only need to outlive a retry.
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            description=f"job {job_id}",
            pipeline=pipe,
        )
        pipe.execute()

    def enqueue_handed_back(self, job_id: uuid.UUID, queue: str) -> None:
        """Deliver a job a stopping worker handed back. Its attempt count was given back, so its usual
        delivery id may still name the delivery that worker is finishing: this one gets its own."""
        self._enqueue(job_id, queue, f"{job_id}_handback_{uuid.uuid4().hex[:12]}")

    def waiting(self, queue: str) -> int:
        """Deliveries waiting on ``queue`` (one round trip): a busy worker's cue to admit new jobs."""
        return int(self.redis.llen(Queue(queue, connection=self.redis).key))

    def withdraw(self, queue: str, deliveries: Sequence[tuple[uuid.UUID, int]]) -> int:
        """Take still-queued deliveries (job id, attempt) off ``queue``: their jobs were claimed another
        way (fused into a running batch), and each would otherwise cost a worker a dequeue that finds
        its job taken (after a burst of small requests, enough of them to hold up the next new job for
        a whole batch's time). One round trip; returns how many were still queued."""
        if not deliveries:
            return 0
        ids = [delivery_id(job_id, attempt) for job_id, attempt in deliveries]
        withdrawn = self.redis.eval(
            _WITHDRAW, 1, Queue(queue, connection=self.redis).key, RQJob.key_for(""), *ids
        )
        return int(withdrawn)

    def is_delivery_pending(self, job_id: uuid.UUID, attempt: int, queue: str) -> bool:
        """Whether RQ still holds this attempt's delivery: waiting on ``queue`` or in RQ's intermediate
        list (taken by a worker about to start it), or started, deferred or scheduled. A delivery RQ
        still calls queued that neither list holds was popped by a client that never started it (a
        worker killed in between; on the embedded Redis, a blocking pop left behind by a client that
        had gone, which that server does not cancel): it is lost. Two round trips."""
        rq_id = delivery_id(job_id, attempt)
        try:
            rq_job = RQJob.fetch(rq_id, connection=self.redis)
        except NoSuchJobError:
            return False
        status = rq_job.get_status(refresh=False)
        if status in (JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
            return True
        if status != JobStatus.QUEUED:
            return False
        key = Queue(queue, connection=self.redis).key
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpos(key, rq_id)
        pipe.lpos(IntermediateQueue.get_intermediate_queue_key(key), rq_id)
        return any(position is not None for position in pipe.execute())

    def announce_end(self, job_id: uuid.UUID, data: dict[str, Any], ended_job: str | None = None) -> None:
        """Append the job's `end` event (``data``: :func:`end_data`) to its stream and wake its `?wait=`
        listeners, in one round trip (the event first). The wake-up carries ``ended_job`` (the job as
        the API shows it, with all its results, as JSON) when given and not too long for a message, so
        a waiting request can answer without reading the database; else the job's status."""
        if ended_job is None or len(ended_job) > MAX_ANNOUNCED_JOB_CHARS:
            ended_job = data["status"]
        pipe = self.redis.pipeline(transaction=False)
        self.events.append_in(pipe, job_id, "end", data)
        pipe.publish(job_channel(job_id), ended_job)
        pipe.execute()
