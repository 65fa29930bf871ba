"""Logical replication slots (plugin test_decoding): creation with an exported snapshot,
reading in that snapshot, peeking at changes, and housekeeping.

A slot created over the replication protocol exports a snapshot of exactly its starting
point; pg_dump ``--snapshot`` and :func:`snapshot_transaction` read that state, and the
slot's changes are everything committed after it, so nothing is missed or counted twice.
The SQL function ``pg_create_logical_replication_slot()`` exports no snapshot, hence the
replication connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import DiagnosticField, ExecStatus
from psycopg.pq.abc import PGresult

from pgbackup.connection import ConnectionInfo
from pgbackup.errors import BackupError
from pgbackup.snapshot import SESSION_SETUP
from pgbackup.tablestats import STATS_SETTINGS

PLUGIN = "test_decoding"
_SERVER_SAID_RE = re.compile(r"(?:FATAL|ERROR):\s+(.*)")
SLOT_NAME_RE = re.compile(r"[a-z0-9_]{1,63}")

# The text form of decoded values depends on these settings, so they are fixed for the
# peeking session (a replay must use the same). test_decoding names a column's type with
# format_type_be(), which qualifies a type only when it is not visible on the search_path:
# with pg_catalog alone, every type outside pg_catalog comes out schema-qualified.
DECODING_SETTINGS: dict[str, str] = {**STATS_SETTINGS, "search_path": "pg_catalog"}

# include-xids and skip-empty-xacts are test_decoding's defaults, spelled out all the same.
_PEEK_SQL = """
SELECT lsn::text, xid::text::bigint, data
FROM pg_logical_slot_peek_changes(%s, %s::pg_lsn, NULL,
    'include-timestamp', '1', 'include-xids', '1', 'skip-empty-xacts', '1')
"""
PEEK_APPLICATION_NAME = "pgbackup peek changes"
_FLUSHED_SQL = "SELECT %s::pg_lsn <= pg_current_wal_flush_lsn(), pg_current_wal_flush_lsn()::text"
_DROP_SQL = """
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s
"""
_ADVANCE_SQL = "SELECT end_lsn::text FROM pg_replication_slot_advance(%s, %s::pg_lsn)"
_LIST_SQL = """
SELECT slot_name::text, database::text, active, restart_lsn::text, confirmed_flush_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
FROM pg_replication_slots
WHERE starts_with(slot_name::text, %s)
ORDER BY slot_name
"""


@dataclass(frozen=True)
class ExportedSlot:
    name: str
    consistent_lsn: str
    snapshot_name: str


@dataclass(frozen=True)
class SlotInfo:
    name: str
    database: str | None
    active: bool
    restart_lsn: str | None
    confirmed_flush_lsn: str | None
    retained_wal_bytes: int | None


def check_slot_name(name: str) -> None:
    """PostgreSQL's own rule for slot names: lower-case letters, digits and underscores,
    at most 63 characters."""
    if not SLOT_NAME_RE.fullmatch(name):
        raise BackupError(
            f"invalid replication slot name {name!r}: use 1 to 63 lower-case letters, digits "
            "and underscores"
        )


@contextmanager
def exported_slot(
    conn: ConnectionInfo, name: str, keep_on_error: bool = False
) -> Iterator[ExportedSlot]:
    """Create the logical slot ``name`` and keep its exported snapshot alive for the body.

    The replication connection stays open and idle until the body ends (the snapshot dies
    with its next command), then is closed; the slot stays. If the body raises, the slot is
    dropped unless ``keep_on_error``: a failed backup must not leave a slot holding WAL.
    """
    check_slot_name(name)
    with closing(_replication_connection(conn)) as pg:
        slot = _create_exported(conn, pg, name)
        try:
            yield slot
        except BaseException as exc:
            pg.close()
            if not keep_on_error:
                _drop_after_failure(conn, name, exc)
            raise


def _replication_connection(conn: ConnectionInfo) -> psycopg.Connection:
    """A ``replication=database`` connection with the backup's session settings."""
    try:
        pg = psycopg.connect(make_conninfo(conn.conninfo, replication="database"), autocommit=True)
    except psycopg.Error as exc:
        raise _failure(conn, "cannot open a replication connection to", exc) from None
    # Idle between commands while pg_dump runs: no idle timeout may end it (PostgreSQL 14+).
    idle = ("SET idle_session_timeout = 0",) if pg.info.server_version >= 140000 else ()
    for statement in (*SESSION_SETUP, *idle):
        _exec_replication(conn, pg, statement, "cannot prepare the replication connection to")
    return pg


def _create_exported(conn: ConnectionInfo, pg: psycopg.Connection, name: str) -> ExportedSlot:
    # The replication grammar takes a double-quoted identifier; the name has no quote.
    command = f'CREATE_REPLICATION_SLOT "{name}" LOGICAL {PLUGIN} EXPORT_SNAPSHOT'
    result = _exec_replication(conn, pg, command, f"cannot create replication slot {name} on")
    row = {
        (result.fname(column) or b"").decode(): (result.get_value(0, column) or b"").decode()
        for column in range(result.nfields)
    }
    return ExportedSlot(name, row["consistent_point"], row["snapshot_name"])


def _exec_replication(
    conn: ConnectionInfo, pg: psycopg.Connection, command: str, doing: str
) -> PGresult:
    """Run ``command`` with the simple protocol, the only one a replication connection takes."""
    try:
        result = pg.pgconn.exec_(command.encode())
    except psycopg.Error as exc:  # no result at all: the connection is gone
        raise _failure(conn, doing, exc) from None
    if result.status in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK):
        return result
    message = result.error_field(DiagnosticField.MESSAGE_PRIMARY) or pg.pgconn.error_message
    reason = conn.redact_text(message.decode("utf-8", "replace").strip())
    raise BackupError(f"{doing} {conn.redacted()}: {reason}")


def _drop_after_failure(conn: ConnectionInfo, name: str, exc: BaseException) -> None:
    try:
        drop_slot(conn, name)
    except BackupError as drop_error:
        raise BackupError(
            f"{drop_error} after a failure: the slot keeps WAL until it is dropped by hand "
            f"with SELECT pg_drop_replication_slot('{name}')"
        ) from exc


@contextmanager
def snapshot_transaction(
    conn: ConnectionInfo, snapshot_name: str
) -> Iterator[psycopg.Connection]:
    """A read-only REPEATABLE READ transaction in the exported snapshot ``snapshot_name``.

    Whatever the body reads (row counts, checksums, sequence values, whole tables) is the
    state at the slot's consistent point. The exporting connection must still be open.
    """
    with _session(conn, f"cannot read in snapshot {snapshot_name} of") as pg:
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        pg.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name)))
        yield pg


def peek_changes(
    conn: ConnectionInfo, slot: str, upto_lsn: str, batch: int = 10_000
) -> Iterator[tuple[str, int | None, str]]:
    """``(lsn, xid, data)`` of every change of ``slot`` committed before ``upto_lsn``,
    without consuming them.

    A server-side cursor hands them over ``batch`` rows at a time, so memory stays flat
    whatever the volume (the server keeps the decoded rows in a tuplestore, which spills to
    disk past work_mem). Values are printed under :data:`DECODING_SETTINGS`.

    Decoding reads only WAL already flushed, so an ``upto_lsn`` beyond it (the current
    position, after asynchronous commits) would silently return less: it is refused. A
    newer slot's consistent point is always flushed.
    """
    doing = f"cannot read the changes of slot {slot} on"
    with _session(conn, doing, PEEK_APPLICATION_NAME) as pg:
        _check_flushed(conn, pg, upto_lsn, doing)
        _apply_settings(pg, DECODING_SETTINGS)
        pg.execute("BEGIN")  # a server-side cursor lives in a transaction
        with pg.cursor(name=f"pgbackup_peek_{slot}") as cursor:
            cursor.itersize = batch
            cursor.execute(_PEEK_SQL, (slot, upto_lsn))
            yield from cursor


def _check_flushed(conn: ConnectionInfo, pg: psycopg.Connection, lsn: str, doing: str) -> None:
    row = pg.execute(_FLUSHED_SQL, (lsn,)).fetchone()
    assert row is not None
    if not row[0]:
        raise BackupError(
            f"{doing} {conn.redacted()}: {lsn} is past the WAL flushed so far ({row[1]})"
        )


def drop_slot(conn: ConnectionInfo, name: str) -> bool:
    """Drop the slot ``name``, releasing the WAL it keeps; False when there is none."""
    with _session(conn, f"cannot drop replication slot {name} on") as pg:
        return bool(pg.execute(_DROP_SQL, (name,)).fetchall())


def advance_slot(conn: ConnectionInfo, name: str, lsn: str) -> str:
    """Move the slot past every change before ``lsn`` (they are stored elsewhere now), so
    the server can recycle that WAL; returns the slot's new position.

    ``lsn`` must be one that changes were read up to (:func:`peek_changes` refuses any
    past the flushed WAL); an unread one, such as the current WAL position, loses changes.
    """
    with _session(conn, f"cannot advance replication slot {name} on") as pg:
        row = pg.execute(_ADVANCE_SQL, (name, lsn)).fetchone()
        assert row is not None  # the function returns one row
        return str(row[0])


def list_slots(conn: ConnectionInfo, prefix: str) -> list[SlotInfo]:
    """Every slot of the server whose name starts with ``prefix``, with the WAL it keeps."""
    with _session(conn, "cannot list the replication slots of") as pg:
        return [SlotInfo(*row) for row in pg.execute(_LIST_SQL, (prefix,)).fetchall()]


@contextmanager
def _session(
    conn: ConnectionInfo, doing: str, application_name: str | None = None
) -> Iterator[psycopg.Connection]:
    """An autocommit connection with the backup's session settings; psycopg errors become
    a BackupError that starts with ``doing`` and names the server."""
    conninfo = make_conninfo(conn.conninfo, application_name=application_name)
    try:
        with psycopg.connect(conninfo, autocommit=True) as pg:
            for statement in SESSION_SETUP:
                pg.execute(statement)
            yield pg
    except psycopg.Error as exc:
        raise _failure(conn, doing, exc) from None


def _apply_settings(pg: psycopg.Connection, settings: dict[str, str]) -> None:
    pairs = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, false)").format(sql.Literal(name), sql.Literal(value))
        for name, value in settings.items()
    )
    pg.execute(sql.SQL("SELECT {}").format(pairs))


def _failure(conn: ConnectionInfo, doing: str, exc: psycopg.Error) -> BackupError:
    return BackupError(f"{doing} {conn.redacted()}: {error_reason(conn, exc)}")


def error_reason(conn: ConnectionInfo, exc: psycopg.Error) -> str:
    """The server's own words for an error, without libpq's connection preamble and
    without the password."""
    text = exc.diag.message_primary or str(exc)
    server_said = _SERVER_SAID_RE.findall(text)
    return conn.redact_text((server_said[-1] if server_said else text).strip())
