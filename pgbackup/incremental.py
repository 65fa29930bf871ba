"""Taking an incremental backup: the changes committed since the previous backup of a
chain, as a psql script (pgbackup.script_format), written like any artifact.

Slots rotate (docs/incremental.md): a new slot B is created with an exported
snapshot; the chain's slot A holds exactly the changes committed before B's consistent
point, which are peeked (not consumed), rendered and stored; what must be read rather than
decoded (tables with no usable key, sequence values, the changed tables' row counts and
checksums) is read in B's snapshot. Slot A is dropped by the caller only once the
incremental is recorded as stored: a crash before that leaves A with every change, and B
is dropped with the failed backup, so nothing is lost or doubled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import sql

from pgbackup.connection import ConnectionInfo
from pgbackup.decoding import Commit, Event, parse_rows
from pgbackup.errors import BackupError
from pgbackup.ids import backup_id_time, is_backup_id
from pgbackup.manifest import Capture, Manifest, TableInfo
from pgbackup.pgdump import pg_dump_version
from pgbackup.replay_sql import (
    REPLAY_SETTINGS_SQL,
    ReplayRenderer,
    TableMeta,
    TableName,
    quote_ident,
    table_metadata,
)
from pgbackup.schema_fingerprint import schema_fingerprint
from pgbackup.script_format import END_MARKER, SEQUENCES_MARKER, TABLES_MARKER, header
from pgbackup.slot_snapshot import clock, server_time
from pgbackup.slots import ExportedSlot, exported_slot, list_slots, peek_changes
from pgbackup.slots import snapshot_transaction as slot_transaction
from pgbackup.streams import DEFAULT_ZSTD, Writable, Zstd
from pgbackup.tablestats import stats_session_setup, table_stats
from pgbackup.targets import Copy, Target, TargetWrite, streaming_to
from pgbackup.version import TOOL_NAME, __version__

PROGRESS_INTERVAL = 0.5
_SEQUENCES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1, 2
"""


class ChainBroken(BackupError):
    """The chain cannot continue (its slot is gone, the schema changed): the next backup
    must start a new chain with a full. The message says why, in one sentence."""


@dataclass
class IncrementalProgress:
    bytes_written: int
    transactions: int
    changes: int


@dataclass
class _Tally:
    """What went by: transactions, changes per table, first and last commit."""

    transactions: int = 0
    first_commit: datetime | None = None
    last_commit: datetime | None = None
    changes: dict[TableName, int] = field(default_factory=dict)

    def count(self, events: Iterable[Event]) -> Iterator[Event]:
        for event in events:
            if isinstance(event, Commit):
                self.transactions += 1
                self.first_commit = self.first_commit or event.committed_at
                self.last_commit = event.committed_at
            yield event


def run_incremental_to(
    conn: ConnectionInfo,
    targets: Sequence[Target],
    backup_id: str,
    parent: Manifest,
    next_slot: str,
    compress: bool = True,
    checksums: bool = True,
    progress: Callable[[IncrementalProgress], None] | None = None,
    manifest_key: bytes | None = None,
    pg_dump: str = "pg_dump",
    tool_version: str = __version__,
    zstd: Zstd = DEFAULT_ZSTD,
) -> list[Copy]:
    """Back up the changes committed after ``parent`` (the chain's latest backup) as
    ``backup_id`` into every target; ``next_slot`` becomes the chain's slot. Raises
    ChainBroken when the chain cannot continue, BackupError when the backup fails (the new
    slot is then dropped and nothing is left in any target)."""
    if not is_backup_id(backup_id):
        raise ValueError(f"not a backup id: {backup_id!r}")
    if parent.capture is None:
        raise ChainBroken(f"backup {parent.backup_id} did not start or continue a chain")
    _require_slot(conn, parent.capture.slot)
    writes = [TargetWrite.of(target, backup_id, compress, "incremental") for target in targets]
    # The id's time: when the backup was asked for, as the catalog has it too.
    started, created = time.monotonic(), backup_id_time(backup_id)
    try:
        covers_until = server_time(conn)
        with exported_slot(conn, next_slot) as slot, \
                slot_transaction(conn, slot.snapshot_name) as snap:
            consistent_at = max(clock(snap), covers_until)
            fingerprint = _same_schema(conn, slot, parent, pg_dump)
            body = _Script(conn, snap, parent, slot, table_metadata(snap))
            content_sha256 = body.write(writes, backup_id, compress, zstd, progress)
            tables = _tables_after(snap, parent, body, checksums)
            version = str(_one(snap, "SHOW server_version")).split()[0]
        capture = body.capture(slot, covers_until, consistent_at, fingerprint)
        base = {"backup_id": backup_id, "type": "incremental", "parent_id": parent.backup_id,
                "created": created, "database": conn.dbname, "server_version": version,
                "pg_dump_version": pg_dump_version(pg_dump), "dump_format": "sql",
                "tool": f"{TOOL_NAME} {tool_version}", "tables": tables,
                "compression": "zstd" if compress else "none",
                "compression_level": zstd.level if compress else None,
                "snapshot": slot.snapshot_name,
                "capture": capture, "duration_ms": round((time.monotonic() - started) * 1000)}
        return [write.finish(base, content_sha256, manifest_key, saved_globals=None)
                for write in writes]
    except BaseException:
        for write in writes:
            write.discard()
        raise


def _require_slot(conn: ConnectionInfo, name: str) -> None:
    if not any(info.name == name for info in list_slots(conn, name)):
        raise ChainBroken(f"the chain's replication slot {name} is gone (dropped by hand, or "
                          "the server was restored): its changes since are lost")


def _same_schema(conn: ConnectionInfo, slot: ExportedSlot, parent: Manifest,
                 pg_dump: str) -> str:
    """The schema's fingerprint in the new snapshot; ChainBroken if it changed."""
    assert parent.capture is not None
    fingerprint = schema_fingerprint(conn, slot.snapshot_name, pg_dump)
    if fingerprint != parent.capture.schema_fingerprint:
        raise ChainBroken(f"the database's schema changed since backup {parent.backup_id} "
                          "(a DDL statement): its changes cannot be replayed onto that schema")
    return fingerprint


class _Script:
    """The script's text, written through the targets' sink as UTF-8."""

    def __init__(self, conn: ConnectionInfo, snap: psycopg.Connection, parent: Manifest,
                 slot: ExportedSlot, meta: dict[TableName, TableMeta]) -> None:
        assert parent.capture is not None
        self.conn, self.snap, self.parent, self.slot, self.meta = conn, snap, parent, slot, meta
        stats_session_setup(snap)  # COPY prints values as the replay settings read them
        self.renderer = ReplayRenderer(meta)
        self.tally = _Tally()
        self.copied: list[TableName] = []

    def write(self, writes: list[TargetWrite], backup_id: str, compress: bool, zstd: Zstd,
              progress: Callable[[IncrementalProgress], None] | None) -> str:
        assert self.parent.capture is not None
        with streaming_to(writes, compress, zstd) as (sink, archive):
            out = _Text(sink, lambda: progress and progress(IncrementalProgress(
                archive.bytes_written, self.tally.transactions,
                sum(self.renderer.stats.changes.values()))))
            out.write(header(backup_id, self.parent.backup_id, self.parent.capture.end_lsn,
                             self.slot.consistent_lsn) + REPLAY_SETTINGS_SQL)
            rows = peek_changes(self.conn, self.parent.capture.slot, self.slot.consistent_lsn)
            for chunk in self.renderer.render(self.tally.count(parse_rows(rows))):
                out.write(chunk)
            out.write(TABLES_MARKER)
            for table in sorted(self.renderer.stats.unkeyed):
                self._copy_whole(table, out)
            out.write(SEQUENCES_MARKER + self._sequences() + END_MARKER)
            out.report()
        return archive.hexdigest()

    def _copy_whole(self, table: TableName, out: _Text) -> None:
        """A changed table with no usable key: its whole content in the new snapshot."""
        meta = self.meta[table]
        columns = [name for name in meta.columns if name not in meta.generated_columns]
        name = f"{quote_ident(table[0])}.{quote_ident(table[1])}"
        listed = ", ".join(quote_ident(column) for column in columns)
        out.write(f"BEGIN;\nDELETE FROM ONLY {name};\nCOPY {name} ({listed}) FROM stdin;\n")
        query = sql.SQL("COPY (SELECT {} FROM ONLY {}) TO STDOUT").format(
            sql.SQL(", ").join(sql.Identifier(column) for column in columns),
            sql.Identifier(*table))
        with self.snap.cursor().copy(query) as copy:
            for data in copy:
                out.write_bytes(bytes(data))
        out.write("\\.\nCOMMIT;\n")
        self.copied.append(table)

    def _sequences(self) -> str:
        """A setval per sequence: its value now (sequences are not transactional, so a
        value at or beyond the tables' is what a restore needs)."""
        lines = []
        for schema, name in self.snap.execute(_SEQUENCES_SQL).fetchall():
            qualified = f"{quote_ident(schema)}.{quote_ident(name)}"
            row = self.snap.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.Identifier(schema, name))).fetchone()
            assert row is not None
            literal = "'" + qualified.replace("'", "''") + "'"
            lines.append(f"SELECT pg_catalog.setval({literal}, {int(row[0])}, "
                         f"{'true' if row[1] else 'false'});\n")
        return "".join(lines)

    def capture(self, slot: ExportedSlot, covers_until: datetime, consistent_at: datetime,
                fingerprint: str) -> Capture:
        assert self.parent.capture is not None
        stats = self.renderer.stats
        changes = stats.changes + stats.unkeyed
        return Capture(
            slot=slot.name, start_lsn=self.parent.capture.end_lsn, end_lsn=slot.consistent_lsn,
            covers_until=covers_until, consistent_at=consistent_at,
            schema_fingerprint=fingerprint, first_commit=self.tally.first_commit,
            last_commit=self.tally.last_commit, transactions=stats.transactions,
            changes=sum(changes.values()),
            table_changes={f"{s}.{t}": n for (s, t), n in sorted(changes.items())},
            tables_copied=[f"{s}.{t}" for s, t in self.copied])


class _Text:
    """UTF-8 text into a byte sink, with a progress callback at most every half second."""

    def __init__(self, sink: Writable, report: Callable[[], object]) -> None:
        self.sink, self.report = sink, report
        self._last = time.monotonic()

    def write(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def write_bytes(self, data: bytes) -> None:
        self.sink.write(data)
        if time.monotonic() - self._last >= PROGRESS_INTERVAL:
            self._last = time.monotonic()
            self.report()


def _tables_after(snap: psycopg.Connection, parent: Manifest, body: _Script,
                  checksums: bool) -> list[TableInfo]:
    """Row counts (and checksums) after the changes: read again in the new snapshot for the
    tables that changed, the parent's for the others, so the cost follows the changes."""
    changed = {f"{s}.{t}" for s, t in body.renderer.stats.changes + body.renderer.stats.unkeyed}
    fresh = {info.qualified_name: info
             for info in table_stats(snap, count_rows=True, checksums=checksums, only=changed)}
    kept = {info.qualified_name: info for info in parent.tables}
    return sorted({**kept, **fresh}.values(), key=lambda info: (info.schema, info.name))


def _one(pg: psycopg.Connection, query: str) -> object:
    row = pg.execute(query).fetchone()
    assert row is not None
    return row[0]
