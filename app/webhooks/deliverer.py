"""Sends the webhook outbox: each due delivery is claimed, POSTed with its signature, and recorded as
delivered, due again after a backoff, or given up after ``webhook_max_attempts``.

Every worker runs a :class:`Deliverer` thread (any process with the database may call
:func:`deliver_due`); claims make concurrent deliverers send each delivery once at a time. A deliverer
that dies mid-send leaves its claim to expire, and the delivery is sent again: receivers deduplicate
on ``X-Judge-Event-Id``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from app.core.config import Settings
from app.core.db import Database
from app.db.base import utcnow
from app.webhooks import addresses, outbox
from app.webhooks import repository as webhooks_repo
from app.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_SECONDS = 3600.0
# A claim outlives its call's timeout by this much before another deliverer may take the delivery.
CLAIM_MARGIN_SECONDS = 30.0
POLL_SECONDS = 2.0
BATCH = 50
USER_AGENT = "judge-service-webhooks/1"
# What an attempt led to, by the delivery's status after it.
ATTEMPT_OUTCOMES = {"delivered": "delivered", "pending": "retrying", "failed": "failed"}


def retry_delay(attempt: int, base_seconds: float, cap_seconds: float = MAX_RETRY_DELAY_SECONDS) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``base``, doubling, at most ``cap``."""
    return min(cap_seconds, base_seconds * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class CallResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None


def call(client: httpx.Client, target: addresses.Target, body: bytes, headers: dict[str, str]) -> CallResult:
    """POST one delivery to its checked address; only a 2xx answer delivers it (redirects are not
    followed)."""
    try:
        response = client.send(target.request(client, body, headers))
    except httpx.HTTPError as exc:
        return CallResult(False, None, f"{type(exc).__name__}: {exc}"[:1000])
    if 200 <= response.status_code < 300:
        return CallResult(True, response.status_code)
    return CallResult(False, response.status_code, f"HTTP {response.status_code}: {response.text[:500]}")


def _send(
    client: httpx.Client,
    settings: Settings,
    resolve: addresses.Resolver,
    url: str,
    body: bytes,
    headers: dict[str, str],
) -> CallResult:
    try:
        target = addresses.target(url, allow_internal=settings.webhook_private_addresses, resolve=resolve)
    except addresses.Refused as refused:
        return CallResult(False, None, str(refused))
    return call(client, target, body, headers)


def deliver_due(
    db: Database,
    settings: Settings,
    client: httpx.Client,
    now: datetime | None = None,
    limit: int = BATCH,
    resolve: addresses.Resolver = addresses.system_resolver,
) -> int:
    """One pass over the due deliveries; returns how many were attempted. Each URL's host is resolved
    once, with ``resolve``, and called at the address that was checked."""
    if settings.webhook_secret is None:
        return 0
    secret = settings.webhook_secret.get_secret_value()
    now = now or utcnow()
    hold = timedelta(seconds=settings.webhook_timeout_seconds + CLAIM_MARGIN_SECONDS)
    with db.unit_of_work() as session:
        claimed = webhooks_repo.claim_due(session, now, now + hold, limit)
    for delivery in claimed:
        body = outbox.body(delivery, settings.public_url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, body),
            EVENT_ID_HEADER: str(delivery.id),
            "X-Judge-Delivery-Attempt": str(delivery.attempts),
        }
        attempted_at, started = utcnow(), time.monotonic()
        result = _send(client, settings, resolve, delivery.url, body, headers)
        duration_ms = (time.monotonic() - started) * 1000
        if result.ok:
            status, next_at = "delivered", None
        elif delivery.attempts >= settings.webhook_max_attempts:
            status, next_at = "failed", None
            log.warning(
                "webhook %s for job %s: giving up after %d attempts: %s",
                delivery.id,
                delivery.job_id,
                delivery.attempts,
                result.error,
            )
        else:
            delay = retry_delay(delivery.attempts, settings.webhook_retry_backoff_seconds)
            status, next_at = "pending", utcnow() + timedelta(seconds=delay)
        with db.unit_of_work() as session:
            webhooks_repo.record_attempt(
                session,
                delivery.id,
                delivery.attempts,
                status=status,
                next_attempt_at=next_at,
                status_code=result.status_code,
                error=result.error,
            )
            # Every attempt is kept, even one whose delivery has moved on meanwhile: it was made.
            webhooks_repo.add_attempt(
                session,
                delivery.id,
                delivery.attempts,
                attempted_at=attempted_at,
                duration_ms=duration_ms,
                outcome=ATTEMPT_OUTCOMES[status],
                status_code=result.status_code,
                error=result.error,
                next_attempt_at=next_at,
            )
    return len(claimed)


class Deliverer:
    """A background thread running :func:`deliver_due` every few seconds (at once again after a full
    batch)."""

    def __init__(self, db: Database, settings: Settings, interval: float = POLL_SECONDS) -> None:
        self.db = db
        self.settings = settings
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-deliverer", daemon=True)

    def _run(self) -> None:
        if self.settings.webhook_secret is None:
            log.info("webhook deliveries are off (no webhook_secret)")
            return
        with httpx.Client(timeout=self.settings.webhook_timeout_seconds, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    sent = deliver_due(self.db, self.settings, client)
                except Exception:
                    log.exception("webhook delivery pass failed")
                    sent = 0
                if sent < BATCH and self._stop.wait(self.interval):
                    return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
