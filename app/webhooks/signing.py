"""Webhook signatures: ``X-Judge-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, keyed with the
service's ``webhook_secret``. A receiver recomputes it over the bytes it received and compares."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Judge-Signature"
EVENT_ID_HEADER = "X-Judge-Event-Id"
PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The header value for ``body``."""
    return PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time comparison)."""
    if not header or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())
