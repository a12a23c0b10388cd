"""The schema exists only through the migrations: they build it on an empty database, undo it, and
match the SQLAlchemy models exactly."""

from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.core.migrate import downgrade, upgrade
from app.db import Base
from tests.conftest import scratch_database

TABLES = {
    "jobs",
    "judgment_items",
    "judge_calls",
    "templates",
    "models",
    "datasets",
    "dataset_rows",
    "prediction_cache",
    "verdict_cache",
    "po_runs",
    "po_candidates",
    "po_rounds",
    "sr_runs",
    "sr_prompts",
    "sr_candidates",
    "sr_judgments",
    "sr_pairs",
    "sr_iterations",
    "api_keys",
    "dashboard_sessions",
    "idempotency_keys",
    "webhook_deliveries",
    "webhook_delivery_attempts",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_round_trip_on_empty_postgres() -> None:
    url = scratch_database("judge_test_migrations")
    assert _tables(url) == set()
    upgrade(url)
    assert _tables(url) == TABLES
    downgrade(url, "base")
    assert _tables(url) == set()
    upgrade(url)
    assert _tables(url) == TABLES


def test_models_match_migrations() -> None:
    url = scratch_database("judge_test_migrations")
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_sqlite_embedded_database_migrates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'judge.sqlite3'}"
    upgrade(url)
    assert _tables(url) == TABLES
    downgrade(url, "base")
    assert _tables(url) == set()


def test_the_dropped_models_write_scope_leaves_stored_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 17 probe 10: `models:write` guarded no route; keys that carried it keep their other scopes."""
    url = f"sqlite:///{tmp_path / 'judge.sqlite3'}"
    upgrade(url, "20261207_0011")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (id, tenant, name, prefix, digest, scopes, created_at, updated_at) "
                "VALUES ('00000000000000000000000000000001', 't', '', 'abcdefgh', 'x', "
                "'[\"judge\", \"models:write\"]', '2026-12-07 00:00:00', '2026-12-07 00:00:00')"
            )
        )
    upgrade(url)
    with engine.connect() as conn:
        assert json.loads(conn.execute(text("SELECT scopes FROM api_keys")).scalar_one()) == ["judge"]
    engine.dispose()
