"""Reading a dataset upload: a JSON body, or JSONL rows with the name in the query.

Errors point at the request field (`rows[12].label`) for JSON and at the line (`line 13: ...`) for
JSONL, where there is no field to name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.core.errors import ApiError, InvalidInput, format_loc
from app.core.nul_bytes import find_nul
from app.datasets.schemas import DatasetIn, DatasetRowIn

JSON_TYPES = ("application/json",)
JSONL_TYPES = ("application/x-ndjson", "application/jsonl")


@dataclass(frozen=True)
class Upload:
    dataset: DatasetIn
    line_numbers: list[int] | None = None
    """JSONL only: the line of the body each row came from, counted from 1."""

    def problem(self, index: int | None, message: str, field: str | None = None) -> InvalidInput:
        """An error about row ``index`` (or the rows as a whole when None) in the upload's own terms."""
        if self.line_numbers is None:
            where = "rows" if index is None else f"rows[{index}]"
            return InvalidInput(message, where + (f".{field}" if field else ""))
        if index is None:
            return InvalidInput(message)
        return InvalidInput(f"line {self.line_numbers[index]}: {message}")


def media_type(content_type: str | None) -> str:
    return (content_type or "application/json").split(";", 1)[0].strip().lower()


def parse_upload(content_type: str | None, body: bytes, name: str | None, description: str | None) -> Upload:
    """Parse the body by its content type; 415 for a type that is neither JSON nor JSONL."""
    kind = media_type(content_type)
    if kind in JSONL_TYPES:
        return _parse_jsonl(body, name, description)
    if kind in JSON_TYPES or kind.endswith("+json"):
        if name is not None or description is not None:
            field = "name" if name is not None else "description"
            raise InvalidInput(
                f"`{field}` goes in the JSON body; the query parameter is for JSONL uploads", field
            )
        try:
            return Upload(DatasetIn.model_validate_json(body))
        except ValidationError as exc:
            # The same 422 as a body FastAPI parsed itself (fields named from the body down).
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from exc
    raise ApiError(
        415,
        "unsupported_media_type",
        f"unsupported content type '{kind}': send application/json, or JSONL as " + " or ".join(JSONL_TYPES),
    )


def _first_problem(errors: Sequence[Any]) -> str:
    error = errors[0]
    loc = list(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    if isinstance(ctx, dict) and isinstance(ctx.get("field"), str):
        loc.append(ctx["field"])
    message = str(error.get("msg", "invalid row")).removeprefix("Value error, ")
    field = format_loc(loc)
    return f"{field}: {message}" if field else message


def _parse_jsonl(body: bytes, name: str | None, description: str | None) -> Upload:
    if name is None:
        raise InvalidInput("a JSONL upload needs the `name` query parameter", "name")
    rows: list[DatasetRowIn] = []
    line_numbers: list[int] = []
    for number, raw in enumerate(body.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"line {number}: not UTF-8 text") from exc
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: invalid JSON ({exc.msg}, column {exc.colno})") from exc
        if not isinstance(value, dict):
            raise InvalidInput(f"line {number}: expected a JSON object, got {type(value).__name__}")
        nul = find_nul(value)
        if nul is not None:
            field = format_loc(nul[0])
            raise InvalidInput(f"line {number}: " + (f"{field}: {nul[1]}" if field else nul[1]))
        try:
            rows.append(DatasetRowIn.model_validate(value))
        except ValidationError as exc:
            raise InvalidInput(f"line {number}: {_first_problem(exc.errors())}") from exc
        line_numbers.append(number)
    if not rows:
        raise InvalidInput("the upload holds no rows (one JSON object per line)")
    try:
        dataset = DatasetIn(name=name, description=description or "", rows=rows)
    except ValidationError as exc:
        raise InvalidInput(_first_problem(exc.errors()), format_loc(exc.errors()[0]["loc"])) from exc
    return Upload(dataset, line_numbers)
