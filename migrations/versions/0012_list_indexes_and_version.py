"""The backups list at any size: an index for each of its orders (newest first, ties by id;
of all backups, of one type, of one status), which replaces the index on created_at alone,
and the list's version counter (services.catalog_version), which its ETags are made of.

Revision ID: 0012_list_indexes_and_version
Revises: 0011_ids_never_reused
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_list_indexes_and_version"
down_revision = "0011_ids_never_reused"
branch_labels = None
depends_on = None

INDEXES = {"ix_backups_created_at_id": ["created_at", "id"],
           "ix_backups_type_created_at_id": ["type", "created_at", "id"],
           "ix_backups_status_created_at_id": ["status", "created_at", "id"]}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "backups", columns)
    op.drop_index("ix_backups_created_at", table_name="backups")
    versions = op.create_table(
        "catalog_versions",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(versions, [{"name": "backups", "version": 0}])


def downgrade() -> None:
    op.drop_table("catalog_versions")
    op.create_index("ix_backups_created_at", "backups", ["created_at"])
    for name in INDEXES:
        op.drop_index(name, table_name="backups")
