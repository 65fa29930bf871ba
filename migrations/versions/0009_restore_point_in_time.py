"""A restore's point in time: the moment a restore of a chain reaches.

Revision ID: 0009_restore_point_in_time
Revises: 0008_change_capture
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_restore_point_in_time"
down_revision = "0008_change_capture"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("restores") as batch:
        batch.add_column(sa.Column("point_in_time", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("restores") as batch:
        batch.drop_column("point_in_time")
