"""A consistent view of a database, exported so pg_dump can share it.

The transaction opened here must stay open until pg_dump has finished: the exported
snapshot is valid only as long as its transaction lives. The tables are listed in that same
snapshot without reading them: their rows are counted and digested from pg_dump's own
stream (pgbackup.copydigest), so they describe exactly the data pg_dump writes. Only when
that stream cannot be read (an archive version the parser does not know) are they read in
the same snapshot instead (``Snapshot.scan``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import psycopg

from pgbackup.connection import ConnectionInfo
from pgbackup.errors import BackupError
from pgbackup.manifest import TableInfo
from pgbackup.tablestats import table_stats

# pg_dump sets the same in its session: server defaults must not cut a backup short, and
# above all must not end the idle transaction whose snapshot pg_dump is still to import.
SESSION_SETUP = (
    "SET statement_timeout = 0",
    "SET lock_timeout = 0",
    "SET idle_in_transaction_session_timeout = 0",
)


@dataclass(frozen=True)
class Snapshot:
    """``tables`` are listed only; ``scan(checksums)`` reads them in the snapshot: rows,
    and server-side checksums when asked (valid while the snapshot's transaction is)."""

    snapshot_id: str
    server_version: str
    tables: list[TableInfo]
    scan: Callable[[bool], list[TableInfo]]


def listed_snapshot(pg: psycopg.Connection, snapshot_id: str, server_version: str) -> Snapshot:
    """The tables of ``pg``'s current snapshot, exported as ``snapshot_id``."""
    return Snapshot(snapshot_id, server_version,
                    table_stats(pg, count_rows=False, checksums=False),
                    partial(_scan, pg))


def _scan(pg: psycopg.Connection, checksums: bool) -> list[TableInfo]:
    return table_stats(pg, count_rows=True, checksums=checksums)


@contextmanager
def exported_snapshot(conn: ConnectionInfo) -> Iterator[Snapshot]:
    """Open a repeatable-read transaction, export its snapshot and list the tables (rows
    and checksums unknown: see pgbackup.copydigest)."""
    try:
        with psycopg.connect(conn.conninfo, autocommit=True) as pg:
            for statement in SESSION_SETUP:
                pg.execute(statement)
            pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _describe(pg)
    except psycopg.Error as exc:
        message = conn.redact_text(str(exc).strip())
        raise BackupError(f"cannot read database {conn.redacted()}: {message}") from None


def _describe(pg: psycopg.Connection) -> Snapshot:
    snapshot_id = _scalar(pg, "SELECT pg_export_snapshot()")
    server_version = _scalar(pg, "SHOW server_version").split()[0]
    return listed_snapshot(pg, snapshot_id, server_version)


def _scalar(pg: psycopg.Connection, query: str) -> str:
    row = pg.execute(query).fetchone()
    assert row is not None
    return str(row[0])
