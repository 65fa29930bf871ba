"""Activity: a repeat count, so a refused token repeated from one address is one event.

Revision ID: 0005_activity_times
Revises: 0004_claims_and_restore_slot
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_activity_times"
down_revision = "0004_claims_and_restore_slot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("activity") as batch_op:
        batch_op.add_column(sa.Column("times", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("activity") as batch_op:
        batch_op.drop_column("times")
