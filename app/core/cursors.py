"""Opaque page cursors: a JSON list, base64url-encoded, so clients never depend on what is inside."""

from __future__ import annotations

import base64
import json

from app.core.errors import InvalidInput


def encode_cursor(payload: list[str | int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[str | int]:
    """The list inside ``cursor``; a 422 on the ``cursor`` field when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, json.JSONDecodeError) as exc:
        raise InvalidInput("malformed cursor", "cursor") from exc
    if not isinstance(value, list):
        raise InvalidInput("malformed cursor", "cursor")
    return value


def decode_index_cursor(cursor: str) -> int:
    """A cursor that holds one row index (pages in index order)."""
    parts = decode_cursor(cursor)
    # bool is an int subclass: a forged [true] must not pass.
    if len(parts) != 1 or type(parts[0]) is not int or not 0 <= parts[0] < 2**31:
        raise InvalidInput("malformed cursor", "cursor")
    return parts[0]
