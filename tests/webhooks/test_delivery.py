"""Job-end webhooks: the outbox row written with the end, signed delivery to a real HTTP receiver,
retries with backoff, giving up, and one delivery at a time under concurrent deliverers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import ip_address
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis
from sqlalchemy import delete, update

from app.core.config import Settings
from app.core.db import Database
from app.db.base import utcnow
from app.db.tables import Job, WebhookDelivery
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue
from app.webhooks import repository as webhooks_repo
from app.webhooks.addresses import IPAddress
from app.webhooks.deliverer import deliver_due, retry_delay
from app.webhooks.signing import sign, verify
from tests.conftest import RollbackDatabase
from tests.webhooks.receiver import Receiver, running_receiver
from workers.sweeper import sweep

SECRET = "whsec-test-0123456789"
QUEUE = "judge.SmolLM2-135M-Instruct"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_secret": SecretStr(SECRET),
            "webhook_retry_backoff_seconds": 0.0,
            "webhook_max_attempts": 5,
            "webhook_timeout_seconds": 5.0,
            "public_url": "https://judge.example.com/",
        }
    )


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def _job(db: Database, callback_url: str | None, **values: Any) -> uuid.UUID:
    with db.unit_of_work() as session:
        job = jobs_repo.create_job(
            session,
            kind="judge_pairwise",
            model="SmolLM2-135M-Instruct",
            queue=QUEUE,
            params={},
            total=3,
            tenant="hooks",
            metadata={"mtbench_run": "r1"},
            callback_url=callback_url,
        )
        if values:
            session.execute(update(Job).where(Job.id == job.id).values(**values))
        return job.id


def _end(
    db: Database, redis: Redis, job_id: uuid.UUID, status: str = "succeeded", error: str | None = None
) -> bool:
    with db.unit_of_work() as session:
        return lifecycle.end(session, JobQueue(redis, 60), job_id, status, error)


def _delivery(db: Database, job_id: uuid.UUID) -> WebhookDelivery | None:
    with db.unit_of_work() as session:
        return webhooks_repo.for_job(session, job_id)


# Signing ---------------------------------------------------------------------------------------


def test_signature_is_the_hex_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"job_id":"x","status":"succeeded"}'
    header = sign(SECRET, body)
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify(SECRET, body, header)
    assert not verify(SECRET, body + b" ", header)
    assert not verify("another-secret", body, header)
    assert not verify(SECRET, body, header.removeprefix("sha256="))
    assert not verify(SECRET, body, None)


def test_retry_delay_doubles_from_the_base_up_to_the_cap() -> None:
    assert [retry_delay(n, 5.0) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert retry_delay(30, 5.0) == 3600.0
    assert retry_delay(3, 0.0) == 0.0


# The outbox --------------------------------------------------------------------------------------


def test_ending_a_job_with_a_callback_records_one_delivery_in_the_same_transaction(
    db: RollbackDatabase, redis: Redis, receiver: Receiver
) -> None:
    job_id = _job(db, receiver.url, progress_done=3)
    assert _delivery(db, job_id) is None
    assert _end(db, redis, job_id, "failed", "engine fell over")
    delivery = _delivery(db, job_id)
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.url) == ("pending", 0, receiver.url)
    assert delivery.payload["status"] == "failed" and delivery.payload["error"] == "engine fell over"
    # A job ends once: a second end changes nothing and records nothing.
    assert not _end(db, redis, job_id, "succeeded")
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None and job.status == "failed"
        assert session.query(WebhookDelivery).filter_by(job_id=job_id).count() == 1


def test_an_end_that_rolls_back_leaves_no_delivery(
    db: RollbackDatabase, redis: Redis, receiver: Receiver
) -> None:
    job_id = _job(db, receiver.url)
    with pytest.raises(RuntimeError), db.unit_of_work() as session:
        lifecycle.end(session, JobQueue(redis, 60), job_id, "succeeded", None)
        raise RuntimeError("the transaction fails after the end was written")
    assert _delivery(db, job_id) is None
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None and job.status == "queued"


def test_a_job_without_a_callback_records_nothing(db: RollbackDatabase, redis: Redis) -> None:
    job_id = _job(db, None)
    assert _end(db, redis, job_id)
    assert _delivery(db, job_id) is None


def test_a_job_the_sweeper_fails_gets_its_callback(
    db: RollbackDatabase, redis: Redis, receiver: Receiver
) -> None:
    job_id = _job(db, receiver.url)
    with db.unit_of_work() as session:
        assert jobs_repo.claim(session, job_id, "dead-worker", lease_seconds=60) is not None
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1), attempts=3)
        )
    sweep(db, JobQueue(redis, 60), QUEUE, lease_seconds=60, max_attempts=3)
    delivery = _delivery(db, job_id)
    assert delivery is not None
    assert delivery.payload["status"] == "failed" and "lease expired" in delivery.payload["error"]


# Delivery ----------------------------------------------------------------------------------------


def test_the_receiver_gets_a_signed_body_it_can_verify(
    db: RollbackDatabase, redis: Redis, receiver: Receiver, hook_settings: Settings, http: httpx.Client
) -> None:
    job_id = _job(db, receiver.url, progress_done=3)
    _end(db, redis, job_id)
    assert deliver_due(db, hook_settings, http) == 1
    [call] = receiver.calls
    assert call.path == "/hooks/judge"
    assert call.headers["content-type"] == "application/json"
    assert verify(SECRET, call.body, call.headers["x-judge-signature"])
    body = json.loads(call.body)
    delivery = _delivery(db, job_id)
    assert delivery is not None
    assert call.headers["x-judge-event-id"] == body["event_id"] == str(delivery.id)
    assert body["event"] == "job.ended"
    assert (body["job_id"], body["kind"], body["status"], body["error"]) == (
        str(job_id),
        "judge_pairwise",
        "succeeded",
        None,
    )
    assert body["progress"] == {"done": 3, "total": 3, "failed": 0}
    assert body["finished_at"] is not None
    assert body["metadata"] == {"mtbench_run": "r1"}
    assert body["results_url"] == f"https://judge.example.com/v1/jobs/{job_id}/results"
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None
    # Delivered: later passes send nothing more.
    assert deliver_due(db, hook_settings, http) == 0
    assert len(receiver.calls) == 1


def test_a_receiver_that_fails_twice_gets_the_same_event_until_it_answers_2xx(
    db: RollbackDatabase, redis: Redis, receiver: Receiver, hook_settings: Settings, http: httpx.Client
) -> None:
    receiver.statuses = [500, 503]
    job_id = _job(db, receiver.url)
    _end(db, redis, job_id)
    for _ in range(5):
        deliver_due(db, hook_settings, http)
    assert len(receiver.calls) == 3
    assert len({call.body for call in receiver.calls}) == 1
    assert len({call.headers["x-judge-event-id"] for call in receiver.calls}) == 1
    assert [call.headers["x-judge-delivery-attempt"] for call in receiver.calls] == ["1", "2", "3"]
    delivery = _delivery(db, job_id)
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "delivered",
        3,
        200,
        None,
    )


def test_a_failed_attempt_waits_out_its_backoff(
    db: RollbackDatabase, redis: Redis, receiver: Receiver, hook_settings: Settings, http: httpx.Client
) -> None:
    settings = hook_settings.model_copy(update={"webhook_retry_backoff_seconds": 60.0})
    receiver.statuses = [502]
    job_id = _job(db, receiver.url)
    _end(db, redis, job_id)
    started = utcnow()
    assert deliver_due(db, settings, http) == 1
    delivery = _delivery(db, job_id)
    assert delivery is not None
    assert (delivery.status, delivery.last_status_code) == ("pending", 502)
    assert delivery.last_error is not None and "HTTP 502" in delivery.last_error
    assert timedelta(seconds=59) < delivery.next_attempt_at - started < timedelta(seconds=62)
    assert deliver_due(db, settings, http) == 0  # not due yet
    assert deliver_due(db, settings, http, now=utcnow() + timedelta(seconds=61)) == 1
    assert len(receiver.calls) == 2
    delivery = _delivery(db, job_id)
    assert delivery is not None and delivery.status == "delivered"


def test_delivery_is_given_up_after_the_last_attempt(
    db: RollbackDatabase, redis: Redis, receiver: Receiver, hook_settings: Settings, http: httpx.Client
) -> None:
    settings = hook_settings.model_copy(update={"webhook_max_attempts": 3})
    receiver.statuses = [500] * 10
    job_id = _job(db, receiver.url)
    _end(db, redis, job_id)
    for _ in range(6):
        deliver_due(db, settings, http)
    assert len(receiver.calls) == 3
    delivery = _delivery(db, job_id)
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    assert delivery.last_error is not None and "receiver says no" in delivery.last_error


def test_an_unreachable_receiver_is_retried_with_the_error_recorded(
    db: RollbackDatabase, redis: Redis, hook_settings: Settings, http: httpx.Client
) -> None:
    with running_receiver() as gone:
        url = gone.url  # a port nothing listens on once the server stops
    job_id = _job(db, url)
    _end(db, redis, job_id)
    assert deliver_due(db, hook_settings, http) == 1
    delivery = _delivery(db, job_id)
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error is not None and "ConnectError" in delivery.last_error


def test_nothing_is_sent_without_a_signing_secret(
    db: RollbackDatabase, redis: Redis, receiver: Receiver, settings: Settings, http: httpx.Client
) -> None:
    job_id = _job(db, receiver.url)
    _end(db, redis, job_id)
    assert settings.webhook_secret is None
    assert deliver_due(db, settings, http) == 0
    assert receiver.calls == []
    delivery = _delivery(db, job_id)
    assert delivery is not None and (delivery.status, delivery.attempts) == ("pending", 0)


# Concurrent deliverers (real commits) -----------------------------------------------------------------


def test_two_concurrent_deliverers_send_each_delivery_exactly_once(
    committing_url: str, redis: Redis, receiver: Receiver, hook_settings: Settings
) -> None:
    receiver.delay = 0.02
    db = Database(committing_url)
    job_ids = [_job(db, receiver.url) for _ in range(24)]
    for job_id in job_ids:
        _end(db, redis, job_id)
    with db.unit_of_work() as session:
        ours = {d.id for d in session.query(WebhookDelivery).filter(WebhookDelivery.job_id.in_(job_ids))}
    assert len(ours) == 24

    def pending() -> int:
        with db.unit_of_work() as session:
            return (
                session.query(WebhookDelivery)
                .filter(WebhookDelivery.id.in_(ours), WebhookDelivery.status != "delivered")
                .count()
            )

    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def deliverer() -> None:
        try:
            start.wait()
            with httpx.Client(timeout=5.0) as client:
                deadline = time.monotonic() + 30
                while pending() and time.monotonic() < deadline:
                    deliver_due(db, hook_settings, client, limit=3)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=deliverer) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        received = Counter(
            call.headers["x-judge-event-id"]
            for call in receiver.calls
            if uuid.UUID(call.headers["x-judge-event-id"]) in ours
        )
        assert set(received) == {str(i) for i in ours}
        assert set(received.values()) == {1}, received
        assert pending() == 0
    finally:
        with db.unit_of_work() as session:
            session.execute(delete(Job).where(Job.id.in_(job_ids)))
        db.dispose()


def test_a_delivery_to_an_internal_address_is_not_sent_and_says_why(
    db: RollbackDatabase, redis: Redis, receiver: Receiver, hook_settings: Settings, http: httpx.Client
) -> None:
    strict = hook_settings.model_copy(update={"webhook_private_addresses": False})
    job_id = _job(db, receiver.url)
    assert _end(db, redis, job_id)
    assert deliver_due(db, strict, http) == 1
    assert receiver.calls == []
    delivery = _delivery(db, job_id)
    assert delivery is not None and delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error is not None and "internal address 127.0.0.1" in delivery.last_error


class StubResolver:
    """Answers each lookup of a name with the next of its scripted addresses (the last one again once
    they run out), and counts the lookups: no DNS server is asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        scripted = self.answers[host]
        return [ip_address(scripted[min(len(self.lookups), len(scripted)) - 1])]


def test_the_call_goes_to_the_address_that_was_checked_under_the_urls_name(
    db: RollbackDatabase, redis: Redis, hook_settings: Settings, http: httpx.Client
) -> None:
    # `localhost` resolves to 127.0.0.2 for the guard, then to 127.0.0.3 (where nothing listens) for
    # any later lookup, as a rebinding name would; the call must reach 127.0.0.2.
    with running_receiver("127.0.0.2") as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        resolver = StubResolver({"localhost": ["127.0.0.2", "127.0.0.3"]})
        job_id = _job(db, f"http://localhost:{port}/hooks/judge")
        assert _end(db, redis, job_id)
        assert deliver_due(db, hook_settings, http, resolve=resolver) == 1
    assert resolver.lookups == ["localhost"]
    [received] = receiver.calls
    assert received.headers["host"] == f"localhost:{port}"
    delivery = _delivery(db, job_id)
    assert delivery is not None and delivery.status == "delivered"


def test_a_pinned_https_call_names_the_host_for_tls_and_in_the_host_header(
    db: RollbackDatabase, redis: Redis, hook_settings: Settings
) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    # No traffic: the transport answers in process; the public address is only what the stub says.
    strict = hook_settings.model_copy(update={"webhook_private_addresses": False})
    job_id = _job(db, "https://hooks.example.com/judge?x=1")
    assert _end(db, redis, job_id)
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        resolver = StubResolver({"hooks.example.com": ["93.184.216.34"]})
        assert deliver_due(db, strict, client, resolve=resolver) == 1
    [request] = sent
    assert str(request.url) == "https://93.184.216.34/judge?x=1"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_two_names_at_one_address_never_share_a_connection(
    db: RollbackDatabase, redis: Redis, hook_settings: Settings, http: httpx.Client
) -> None:
    # The client pools connections by address: a kept-alive connection (over https, one whose
    # certificate was checked for the first name) would carry the second name's call.
    with running_receiver("127.0.0.1", keep_alive=True) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        resolver = StubResolver({"a.hooks.test": ["127.0.0.1"], "b.hooks.test": ["127.0.0.1"]})
        for name in ("a.hooks.test", "b.hooks.test", "a.hooks.test"):
            assert _end(db, redis, _job(db, f"http://{name}:{port}/hooks/judge"))
        assert deliver_due(db, hook_settings, http, resolve=resolver) == 3
    hosts = [call.headers["host"].split(":")[0] for call in receiver.calls]
    assert sorted(hosts) == ["a.hooks.test", "a.hooks.test", "b.hooks.test"]
    assert len({call.peer for call in receiver.calls}) == 3  # a connection of its own for each delivery


def test_a_name_resolving_to_a_metadata_address_is_refused_before_any_connection(
    db: RollbackDatabase, redis: Redis, hook_settings: Settings
) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no call may be made: {request.url}")

    strict = hook_settings.model_copy(update={"webhook_private_addresses": False})
    job_id = _job(db, "http://metadata.example.com/latest")
    assert _end(db, redis, job_id)
    with httpx.Client(transport=httpx.MockTransport(never)) as client:
        resolver = StubResolver({"metadata.example.com": ["100.100.100.200"]})
        assert deliver_due(db, strict, client, resolve=resolver) == 1
    delivery = _delivery(db, job_id)
    assert delivery is not None and delivery.status == "pending"
    assert delivery.last_error is not None and "internal address 100.100.100.200" in delivery.last_error
