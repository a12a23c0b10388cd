"""prediction_cache.tenant: whose job computed an output (null: shared operator-wide)

Revision ID: 20261207_0011
Revises: 20261202_0010
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0011"
down_revision: str | None = "20261202_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Entries written before the column existed were shared by every tenant: they stay null (shared),
    # and only a service with `prediction_cache_scope = operator` still reads them.
    with op.batch_alter_table("prediction_cache") as batch:
        batch.add_column(sa.Column("tenant", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction_cache") as batch:
        batch.drop_column("tenant")
