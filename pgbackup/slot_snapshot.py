"""The snapshot of a full backup that starts a chain: exported by a new replication slot,
so the slot holds exactly the changes committed after what pg_dump writes.

The tables are listed in that same snapshot, as pgbackup.snapshot does for a backup
without a chain (their rows and checksums come from pg_dump's stream); so is the schema's
fingerprint read there, which every incremental of the chain must match.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg

from pgbackup.connection import ConnectionInfo
from pgbackup.errors import BackupError
from pgbackup.manifest import Capture
from pgbackup.schema_fingerprint import schema_fingerprint
from pgbackup.slots import exported_slot, snapshot_transaction
from pgbackup.snapshot import Snapshot, listed_snapshot


@contextmanager
def slot_snapshot(
    conn: ConnectionInfo, slot_name: str, pg_dump: str = "pg_dump",
) -> Iterator[tuple[Snapshot, Capture]]:
    """Create the logical slot ``slot_name`` and list the database's tables in its exported
    snapshot, kept alive for the body (pg_dump's). The Capture says where the chain
    starts: the slot's consistent point, and when (see pgbackup.manifest.Capture). The
    slot is dropped if the body fails."""
    covers_until = server_time(conn)
    with exported_slot(conn, slot_name) as slot, \
            snapshot_transaction(conn, slot.snapshot_name) as pg:
        consistent_at = max(clock(pg), covers_until)
        version = str(_one(pg, "SHOW server_version")).split()[0]
        snapshot = listed_snapshot(pg, slot.snapshot_name, version)
        capture = Capture(
            slot=slot.name, start_lsn=slot.consistent_lsn, end_lsn=slot.consistent_lsn,
            covers_until=covers_until, consistent_at=consistent_at,
            schema_fingerprint=schema_fingerprint(conn, slot.snapshot_name, pg_dump))
        yield snapshot, capture


def server_time(conn: ConnectionInfo) -> datetime:
    """The database server's clock: commit times are the server's, not ours."""
    try:
        with psycopg.connect(conn.conninfo, autocommit=True) as pg:
            return clock(pg)
    except psycopg.Error as exc:
        message = conn.redact_text(str(exc).strip())
        raise BackupError(f"cannot read database {conn.redacted()}: {message}") from None


def clock(pg: psycopg.Connection) -> datetime:
    value = _one(pg, "SELECT clock_timestamp()")
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def _one(pg: psycopg.Connection, query: str) -> object:
    row = pg.execute(query).fetchone()
    assert row is not None
    return row[0]
