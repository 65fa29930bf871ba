"""Users: the optional TOTP second factor.

Revision ID: 0002_totp
Revises: 0001_baseline
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_totp"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret")
