"""Restores: the names of an overwrite's swap, for reconciling after a worker died.

Revision ID: 0003_restore_swap_names
Revises: 0002_totp
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_restore_swap_names"
down_revision = "0002_totp"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("restores") as batch_op:
        batch_op.add_column(sa.Column("replacement_database", sa.String(length=63),
                                      nullable=True))
        batch_op.add_column(sa.Column("retired_database", sa.String(length=63), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("restores") as batch_op:
        batch_op.drop_column("retired_database")
        batch_op.drop_column("replacement_database")
