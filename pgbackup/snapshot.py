"""A consistent view of a database, exported so pg_dump can share it.

The transaction opened here must stay open until pg_dump has finished: the exported
snapshot is valid only as long as its transaction lives. Row counts are taken in that same
snapshot, so they describe exactly the data pg_dump writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgbackup.connection import ConnectionInfo
from pgbackup.errors import BackupError
from pgbackup.manifest import TableInfo

# Ordinary tables and partitions in user schemas; tables owned by an extension are the
# extension's business (pg_dump skips their definitions too).
TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""

# pg_dump sets the same in its session: server defaults must not cut a backup short, and
# above all must not end the idle transaction whose snapshot pg_dump is still to import.
SESSION_SETUP = (
    "SET statement_timeout = 0",
    "SET lock_timeout = 0",
    "SET idle_in_transaction_session_timeout = 0",
)


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    server_version: str
    tables: list[TableInfo]


@contextmanager
def exported_snapshot(conn: ConnectionInfo, count_rows: bool) -> Iterator[Snapshot]:
    """Open a repeatable-read transaction, export its snapshot and describe the tables.

    ``rows`` is the exact count per table when ``count_rows`` is set, else None.
    """
    try:
        with psycopg.connect(conn.conninfo, autocommit=True) as pg:
            for statement in SESSION_SETUP:
                pg.execute(statement)
            pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _describe(pg, count_rows)
    except psycopg.Error as exc:
        message = conn.redact_text(str(exc).strip())
        raise BackupError(f"cannot read database {conn.redacted()}: {message}") from None


def _describe(pg: psycopg.Connection, count_rows: bool) -> Snapshot:
    snapshot_id = _scalar(pg, "SELECT pg_export_snapshot()")
    server_version = _scalar(pg, "SHOW server_version").split()[0]
    tables = [
        TableInfo(schema, name, _count_rows(pg, schema, name) if count_rows else None)
        for schema, name in pg.execute(TABLES_SQL).fetchall()
    ]
    return Snapshot(snapshot_id, server_version, tables)


def _count_rows(pg: psycopg.Connection, schema: str, name: str) -> int:
    query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, name))
    return _scalar(pg, query)


def _scalar(pg: psycopg.Connection, query: str | sql.Composable) -> Any:
    row = pg.execute(query).fetchone()
    return row[0] if row else None
