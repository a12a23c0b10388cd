"""jobs.progress_failed: how many of a job's items ended in error

Revision ID: 20261128_0008
Revises: 20261128_0007
Create Date: 2026-11-28 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261128_0008"
down_revision: str | None = "20261128_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("progress_failed", sa.Integer(), server_default="0", nullable=False))
    # Jobs judged before this column existed: count their items in error.
    op.execute(
        "UPDATE jobs SET progress_failed = (SELECT count(*) FROM judgment_items i "
        "WHERE i.job_id = jobs.id AND i.status = 'error')"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("progress_failed")
