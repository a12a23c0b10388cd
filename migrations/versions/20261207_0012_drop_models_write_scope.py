"""api_keys.scopes: the `models:write` scope is gone (it guarded no route)

Revision ID: 20261207_0012
Revises: 20261207_0011
Create Date: 2026-12-07 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "20261207_0012"
down_revision: str | None = "20261207_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = sa.table(
    "api_keys",
    sa.column("id", sa.Uuid()),
    sa.column("scopes", sa.JSON().with_variant(JSONB(), "postgresql")),
)


def upgrade() -> None:
    # Keys are few: rewrite the ones that carry the scope, in Python, the same way on both databases.
    bind = op.get_bind()
    for key_id, scopes in bind.execute(sa.select(_KEYS.c.id, _KEYS.c.scopes)).all():
        if "models:write" in scopes:
            kept = [scope for scope in scopes if scope != "models:write"]
            bind.execute(_KEYS.update().where(_KEYS.c.id == key_id).values(scopes=kept))


def downgrade() -> None:
    # Which keys held the scope is not kept; it let them do nothing, so none gets it back.
    pass
