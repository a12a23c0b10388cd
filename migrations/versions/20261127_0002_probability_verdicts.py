"""probability verdicts: label distributions and expected scores (verdict_mode logprobs)

Revision ID: 20261127_0002
Revises: 20261127_0001
Create Date: 2026-11-27 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261127_0002"
down_revision: str | None = "20261127_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("judgment_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("probabilities", _json(), nullable=True))
        batch_op.add_column(sa.Column("expected_score", sa.Float(), nullable=True))

    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("probabilities", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.drop_column("probabilities")

    with op.batch_alter_table("judgment_items", schema=None) as batch_op:
        batch_op.drop_column("expected_score")
        batch_op.drop_column("probabilities")
