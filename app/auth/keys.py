"""API keys as values: generation, the stored hash, and the scopes a key may carry. Pure."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

# (`models:write` was dropped: it guarded no route; models are registered by the operator's CLI.)
Scope = Literal["judge", "jobs", "admin"]
SCOPES: tuple[Scope, ...] = ("judge", "jobs", "admin")
_KEY = re.compile(r"^jk_(?P<prefix>[A-Za-z0-9]{8})_(?P<secret>[A-Za-z0-9_-]{32,64})$")


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: ``token`` is shown to its owner once; only ``prefix`` and ``digest`` are kept."""

    token: str
    prefix: str
    digest: str


def digest(token: str) -> str:
    """The stored form of a key. Keys are 256-bit random strings, so one SHA-256 is enough: there is
    nothing to guess that a slow hash would protect."""
    return hashlib.sha256(token.encode()).hexdigest()


def make_key() -> NewKey:
    prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
    token = f"jk_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(token, prefix, digest(token))


def prefix_of(token: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    match = _KEY.match(token)
    return match["prefix"] if match else None


def matches(token: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(token), stored_digest)


def allows(granted: frozenset[str], needed: tuple[str, ...]) -> bool:
    """Whether a key with ``granted`` scopes may do what needs any one of ``needed`` (admin may all)."""
    return "admin" in granted or any(scope in granted for scope in needed)
