"""Change capture on backups: the replication slot that holds a chain's later changes, the
LSN range, the moments it is consistent at and complete until, the commit times an
incremental holds, and why a backup did not start or continue a chain.

Revision ID: 0008_change_capture
Revises: 0007_schedule_destinations
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_change_capture"
down_revision = "0007_schedule_destinations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("slot_name", sa.String(length=63), nullable=True))
        batch.add_column(sa.Column("start_lsn", sa.String(length=17), nullable=True))
        batch.add_column(sa.Column("end_lsn", sa.String(length=17), nullable=True))
        batch.add_column(sa.Column("consistent_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("covers_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("first_commit_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_commit_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("capture_note", sa.Text(), nullable=True))
        batch.create_index("ix_backups_slot_name", ["slot_name"])


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_index("ix_backups_slot_name")
        for column in ("capture_note", "last_commit_at", "first_commit_at", "covers_until",
                       "consistent_at", "end_lsn", "start_lsn", "slot_name"):
            batch.drop_column(column)
