"""An incremental's transaction and change counts in the catalog, so the dashboard's chains
show them without reading any manifest.

Revision ID: 0010_capture_counts
Revises: 0009_restore_point_in_time
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_capture_counts"
down_revision = "0009_restore_point_in_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("transactions", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("changes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("changes")
        batch.drop_column("transactions")
