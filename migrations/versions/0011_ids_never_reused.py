"""Ids are never reused: AUTOINCREMENT on every SQLite table with an integer id, so that a
deleted schedule's (user's, token's, channel's...) id is not handed out again and the
activity log, URLs and job ids keep naming one row. PostgreSQL's sequences already never
reuse a number: nothing to do there.

SQLite can only add AUTOINCREMENT by rebuilding a table, and dropping the old table applies
its children's ON DELETE actions (the app turns foreign keys on): schedule runs and
deliveries would be deleted, backups would lose their schedule, deliveries their alert. What
they would lose is kept aside first and put back. The ids above the highest one left
today may still be handed out once: SQLite did not remember them.

Revision ID: 0011_ids_never_reused
Revises: 0010_capture_counts
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_ids_never_reused"
down_revision = "0010_capture_counts"
branch_labels = None
depends_on = None

TABLES = ("activity", "alerts", "api_tokens", "backup_copies", "claims", "deletions",
          "deliveries", "destinations", "notification_channels", "schedule_runs", "schedules",
          "users")
# Rows deleted when their parent's table is rebuilt: kept whole.
CASCADED = ("schedule_runs", "deliveries")
# Columns set to NULL when their parent's table is rebuilt: (table, column), by id.
NULLED = (("backups", "schedule_id"),)


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in CASCADED:
        op.execute(f"CREATE TEMP TABLE kept_{table} AS SELECT * FROM {table}")
    for table, column in NULLED:
        op.execute(f"CREATE TEMP TABLE kept_{table} AS SELECT id, {column} FROM {table} "
                   f"WHERE {column} IS NOT NULL")
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass
    for table in CASCADED:
        columns = ", ".join(column["name"] for column in sa.inspect(op.get_bind())
                            .get_columns(table))
        op.execute(f"DELETE FROM {table}")
        op.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM temp.kept_{table}")
    for table, column in NULLED:
        op.execute(f"UPDATE {table} SET {column} = (SELECT kept.{column} FROM "
                   f"temp.kept_{table} AS kept WHERE kept.id = {table}.id) "
                   f"WHERE id IN (SELECT id FROM temp.kept_{table})")
    for table in (*CASCADED, *(table for table, _ in NULLED)):
        op.execute(f"DROP TABLE temp.kept_{table}")
