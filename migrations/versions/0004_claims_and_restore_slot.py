"""Claims (databases a job creates, recorded first) and the one-active-restore slot.

Revision ID: 0004_claims_and_restore_slot
Revises: 0003_restore_swap_names
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_claims_and_restore_slot"
down_revision = "0003_restore_swap_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "name"),
    )
    op.create_index(op.f("ix_claims_job_id"), "claims", ["job_id"], unique=False)
    with op.batch_alter_table("restores") as batch_op:
        batch_op.add_column(sa.Column("active_slot", sa.String(length=16), nullable=True))
        batch_op.create_unique_constraint("uq_restores_active_slot", ["active_slot"])


def downgrade() -> None:
    with op.batch_alter_table("restores") as batch_op:
        batch_op.drop_constraint("uq_restores_active_slot", type_="unique")
        batch_op.drop_column("active_slot")
    op.drop_index(op.f("ix_claims_job_id"), table_name="claims")
    op.drop_table("claims")
