"""jobs.cancel_requested_at: when a cancel was asked; judge_calls.queue_ms: a call's wait in the scheduler

Revision ID: 20261202_0009
Revises: 20261128_0008
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_0009"
down_revision: str | None = "20261128_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))
    # Cancels asked before the column existed: their time is unknown, the job's last update is closest.
    op.execute("UPDATE jobs SET cancel_requested_at = updated_at WHERE cancel_requested")
    with op.batch_alter_table("judge_calls") as batch:
        batch.add_column(sa.Column("queue_ms", sa.Float(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("judge_calls") as batch:
        batch.drop_column("queue_ms")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cancel_requested_at")
