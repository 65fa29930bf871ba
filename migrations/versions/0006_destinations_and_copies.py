"""Destinations (local directories, S3-compatible buckets) and each backup's copies there;
the backups completed so far get their copy at the built-in destination "local".

Revision ID: 0006_destinations_and_copies
Revises: 0005_activity_times
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_destinations_and_copies"
down_revision = "0005_activity_times"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "destinations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("encrypt_to", sa.JSON(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("keep_at_least", sa.Integer(), nullable=True),
        sa.Column("lock_mode", sa.String(length=16), nullable=True),
        sa.Column("lock_days", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "backup_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backup_id", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=80), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("artifact", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("location", sa.String(length=1024), nullable=True),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["backup_id"], ["backups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("backup_id", "destination"),
    )
    op.create_index(op.f("ix_backup_copies_backup_id"), "backup_copies", ["backup_id"])
    op.create_index(op.f("ix_backup_copies_destination"), "backup_copies", ["destination"])
    # Every backup completed so far lives in BACKUP_DIR: the built-in destination "local".
    op.execute(
        "INSERT INTO backup_copies (backup_id, destination, required, status, artifact, size, "
        "sha256, location, encrypted, attempts, created_at, stored_at) "
        "SELECT id, 'local', true, 'stored', filename, size, sha256, filename, false, 1, "
        "created_at, finished_at FROM backups WHERE status = 'completed' "
        "AND filename IS NOT NULL")


def downgrade() -> None:
    op.drop_index(op.f("ix_backup_copies_destination"), table_name="backup_copies")
    op.drop_index(op.f("ix_backup_copies_backup_id"), table_name="backup_copies")
    op.drop_table("backup_copies")
    op.drop_table("destinations")
