"""What the dashboard's forms ask for, read from their text: metadata filters (`key=value`), a job
reference (a full id or the start of one) and which items of a job to show. Pure."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from app.core.errors import InvalidInput
from app.jobs.schemas import ItemResult

ITEM_KINDS = ("inconsistent", "error", "pending")
VERDICTS = ("A", "B", "tie")
_HEX = re.compile(r"[0-9a-f]+")


def metadata_filters(text: str | None) -> list[str]:
    """``"run=7, team=a"`` → ``["run:7", "team:a"]`` (the `key:value` form of the jobs service); a
    part with no ``=`` is a 422 naming `metadata`."""
    filters = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"metadata filter {part[:80]!r} is not `key=value` (separate several with commas)", "metadata"
            )
        filters.append(f"{key.strip()}:{value.strip()}")
    return filters


@dataclass(frozen=True)
class JobRef:
    """A full job id, or the start of one (hex digits, dashes left out)."""

    full: uuid.UUID | None = None
    prefix: str | None = None


def job_ref(text: str) -> JobRef:
    """A pasted job id: the whole UUID, or its first hex digits (at least one; dashes are ignored)."""
    cleaned = text.strip().lower()
    try:
        return JobRef(full=uuid.UUID(cleaned))
    except ValueError:
        pass
    digits = cleaned.replace("-", "")
    if not digits or not _HEX.fullmatch(digits) or len(digits) > 32:
        raise InvalidInput(
            f"{text.strip()[:80]!r} is not a job id: paste the whole id or its first characters "
            "(hex digits, e.g. 3fa85f64)",
            "id",
        )
    return JobRef(prefix=digits)


@dataclass(frozen=True)
class ItemFilter:
    """Which of a job's items to show: every item, or only those ``only`` names (`inconsistent`: the two
    orders disagreed; `error`; `pending`) and/or with this ``verdict``."""

    only: str | None = None
    verdict: str | None = None

    @classmethod
    def parse(cls, only: str | None, verdict: str | None) -> ItemFilter:
        if only and only not in ITEM_KINDS:
            raise InvalidInput(f"only must be one of {', '.join(ITEM_KINDS)} (got {only!r})", "only")
        if verdict and verdict not in VERDICTS:
            raise InvalidInput(f"verdict must be one of {', '.join(VERDICTS)} (got {verdict!r})", "verdict")
        return cls(only or None, verdict or None)

    @property
    def active(self) -> bool:
        return self.only is not None or self.verdict is not None

    def query(self) -> dict[str, str]:
        """The filter as the page's query parameters."""
        return {k: v for k, v in (("only", self.only), ("verdict", self.verdict)) if v}

    def keeps(self, result: ItemResult) -> bool:
        if self.verdict is not None and result.verdict != self.verdict:
            return False
        if self.only == "inconsistent":
            return result.consistent is False
        if self.only in ("error", "pending"):
            return result.status == self.only
        return True
