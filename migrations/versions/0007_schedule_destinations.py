"""Schedules name their destinations (none: the configured default), and each copy records
when it was last attempted (a failed copy is retried).

Revision ID: 0007_schedule_destinations
Revises: 0006_destinations_and_copies
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_schedule_destinations"
down_revision = "0006_destinations_and_copies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("destinations", sa.JSON(), nullable=True))
    with op.batch_alter_table("backup_copies") as batch:
        batch.add_column(sa.Column("attempted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backup_copies") as batch:
        batch.drop_column("attempted_at")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("destinations")
