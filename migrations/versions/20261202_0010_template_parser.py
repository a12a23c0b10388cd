"""templates.parser: how a registered template's verdicts are read ("strict" or "fastchat")

Revision ID: 20261202_0010
Revises: 20261202_0009
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_0010"
down_revision: str | None = "20261202_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Templates registered before the column existed read verdicts with the service's rules.
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("parser", sa.String(16), server_default="strict", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("parser")
