"""RQ's worker waits for deliveries on connections of its own, past redis-py's default socket timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext

import pytest
from redis import Redis
from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job as RQJob

from app.embedded import fake_redis_server
from tests.conftest import TEST_REDIS_URL
from workers.main import rq_worker

QUEUE = "judge.rq-worker-test"
DELIVERY = "delivery-6s"


@pytest.fixture(params=["redis", "embedded"])
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    server = nullcontext(TEST_REDIS_URL) if request.param == "redis" else fake_redis_server()
    with server as url:
        client = Redis.from_url(url)
        key = Queue(QUEUE, connection=client).key
        left = (key, IntermediateQueue.get_intermediate_queue_key(key), RQJob.key_for(DELIVERY))
        client.delete(*left)
        yield url
        client.delete(*left)
        client.close()


def test_the_workers_blocking_pop_outlives_redis_pys_socket_timeout(redis_url: str) -> None:
    """redis-py 8 ends a read after 5 s unless told otherwise; RQ's pop waits up to 405 s. The worker's
    connections carry RQ's longer timeout, so a delivery made 6 s into the wait is taken, not missed
    by a pop that failed (and, on the embedded Redis, left a pop behind that takes it for nobody)."""
    worker = rq_worker(redis_url, QUEUE, "host:1:model")
    assert worker.dequeue_timeout > 5
    producer = Queue(QUEUE, connection=Redis.from_url(redis_url))

    def deliver_later() -> None:
        time.sleep(6)
        producer.enqueue("builtins.print", "hello", job_id=DELIVERY)

    thread = threading.Thread(target=deliver_later)
    thread.start()
    started = time.monotonic()
    try:
        taken = Queue.dequeue_any(worker.queues, 20, connection=worker.connection)
    finally:
        thread.join()
        worker.connection.close()
    assert taken is not None
    job, _ = taken
    assert job.id == DELIVERY
    assert 5.5 < time.monotonic() - started < 15
