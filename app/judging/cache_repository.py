"""Every query of the verdict cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import VerdictCache
from app.judging.verdict_cache import CachedOutput

# Keys per query (a 64-item job with both orders asks for 128).
_CHUNK = 1000


@dataclass(frozen=True)
class CacheEntry:
    key: str
    tenant: str | None
    model_key: str
    order: str
    prompt_hash: str
    output: CachedOutput


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(VerdictCache)


def find(session: Session, keys: Sequence[str], tenant: str | None) -> dict[str, CachedOutput]:
    """The cached outputs of these keys that belong to ``tenant`` (None: the shared entries)."""
    owner = VerdictCache.tenant.is_(None) if tenant is None else VerdictCache.tenant == tenant
    found: dict[str, CachedOutput] = {}
    for start in range(0, len(keys), _CHUNK):
        rows = session.execute(
            select(
                VerdictCache.key,
                VerdictCache.text,
                VerdictCache.stop_string,
                VerdictCache.probabilities,
                VerdictCache.mass,
                VerdictCache.tokens_in,
                VerdictCache.tokens_out,
            ).where(VerdictCache.key.in_(list(keys[start : start + _CHUNK])), owner)
        )
        for key, text, stop_string, probabilities, mass, tokens_in, tokens_out in rows:
            found[key] = CachedOutput(text, stop_string, probabilities, mass, tokens_in, tokens_out)
    return found


def store(session: Session, entries: Sequence[CacheEntry]) -> None:
    """Insert the entries; a key stored before takes the new output (a `refresh`, or a concurrent job)."""
    if not entries:
        return
    now = utcnow()
    # One row per key: the last output wins (an item twice in one job gives the same key twice).
    values = {
        e.key: {k: v for k, v in asdict(e).items() if k != "output"} | asdict(e.output) | {"updated_at": now}
        for e in entries
    }
    # In key order: concurrent writers of overlapping keys then lock them in one order (no deadlock).
    stmt = _insert(session).values([values[key] for key in sorted(values)])
    outputs = ("text", "stop_string", "probabilities", "mass", "tokens_in", "tokens_out", "updated_at")
    stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={c: stmt.excluded[c] for c in outputs})
    session.execute(stmt)
