"""Requests that carry a NUL character (U+0000) are refused with a 422 naming where it is.

Postgres cannot store NUL in text or JSON, so a NUL that reached the database would be a 500 there (and
be stored in the embedded SQLite mode): one app-wide dependency checks the path and query parameters,
the headers, and JSON and form bodies of every route, before the route's own validation. JSONL uploads
are checked line by line where they are parsed (:mod:`app.datasets.upload`), with :func:`find_nul`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

NUL = "\x00"
MESSAGE = "must not contain the NUL character (\\u0000)"
KEY_MESSAGE = "keys must not contain the NUL character (\\u0000)"

Loc = tuple[int | str, ...]


def find_nul(value: Any, loc: Loc = ()) -> tuple[Loc, str] | None:
    """Where the first NUL in a decoded JSON value is (the path down to it, and what is wrong there), or
    None when it holds none."""
    for where, message in _nuls(value, loc):
        return where, message
    return None


def _nuls(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        if NUL in value:
            yield loc, MESSAGE
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                yield loc, KEY_MESSAGE
            yield from _nuls(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nuls(item, (*loc, index))


def _refuse(loc: Loc, message: str = MESSAGE) -> RequestValidationError:
    return RequestValidationError([{"type": "string_nul", "loc": loc, "msg": message, "input": None}])


def _media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "application/json").split(";", 1)[0].strip().lower()


async def _body_nul(request: Request) -> tuple[Loc, str] | None:
    if request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return None
    kind = _media_type(request)
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # The body is kept for a route that reads it itself; a RuntimeError: FastAPI read it as the
        # route's form already (Starlette keeps the form, not the body).
        with contextlib.suppress(RuntimeError):
            await request.body()
        form = await request.form()
        for key, value in form.multi_items():
            if NUL in key or (isinstance(value, str) and NUL in value):
                return ("body", key.replace(NUL, "")), MESSAGE
        return None
    if kind != "application/json" and not kind.endswith("+json"):
        return None  # JSONL is checked where it is parsed, line by line
    body = await request.body()
    # Cheap first: the body can only hold a NUL as the escape `\u0000` (or raw, or as UTF-16/32).
    if b"\\u0000" not in body and b"\x00" not in body:
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own validation says so
    return find_nul(decoded, ("body",))


async def refuse_nul_bytes(request: Request) -> None:
    """422 when a path or query parameter, a header, or a JSON or form body holds a NUL character."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            raise _refuse(("path", name))
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise _refuse(("query", name.replace(NUL, "")))
    for raw_name, raw_value in request.headers.raw:
        if b"\x00" in raw_value:
            raise _refuse(("header", raw_name.decode("latin-1")))
    found = await _body_nul(request)
    if found is not None:
        raise _refuse(*found)
