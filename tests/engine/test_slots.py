"""Replication slots with exported snapshots, peeking at changes, and capture readiness,
on real PostgreSQL servers."""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgbackup.capture_readiness import (
    capture_readiness,
    plugin_problem,
    replication_connection_problem,
)
from pgbackup.connection import ConnectionInfo
from pgbackup.errors import BackupError
from pgbackup.slots import (
    PEEK_APPLICATION_NAME,
    advance_slot,
    drop_slot,
    exported_slot,
    list_slots,
    peek_changes,
    snapshot_transaction,
)
from tests.engine.helpers import require_tool
from tools.localservices import PostgresServer

_INSERT_RE = re.compile(r"^table public\.numbered: INSERT: n\[integer\]:(\d+)$")


class CaptureDb:
    """A database of its own and a slot-name prefix; every slot with the prefix is dropped
    in teardown (before the database, which cannot be dropped while it has slots)."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.name = f"slots_{secrets.token_hex(4)}"
        self.prefix = f"test_slots_{secrets.token_hex(4)}_"
        self.url = server.create_database(self.name)
        self.conn = ConnectionInfo.from_url(self.url)
        with self.connect() as pg:
            pg.execute("CREATE TABLE numbered (n integer PRIMARY KEY)")

    def slot(self, suffix: str) -> str:
        return self.prefix + suffix

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def flushed_lsn(self) -> str:
        """The WAL position after every commit so far, once flushed: the session's server
        commits asynchronously, and decoding reads only flushed WAL. A synchronous commit
        flushes everything before it."""
        with self.connect() as pg:
            pg.execute("SET synchronous_commit = on")
            # A commit that wrote WAL (catalog rows; decoded as an empty transaction, so
            # skipped) waits for the flush; one that wrote nothing would not.
            pg.execute("CREATE TEMPORARY TABLE flush_marker ()")
            row = pg.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def insert(self, numbers: Iterable[int]) -> None:
        with self.connect() as pg:
            pg.execute("INSERT INTO numbered SELECT unnest(%s::int[])", (list(numbers),))

    def teardown(self) -> None:
        admin = ConnectionInfo.from_url(self.server.url())
        for slot in list_slots(admin, self.prefix):
            drop_slot(admin, slot.name)
        self.server.drop_database(self.name)


@pytest.fixture
def capture(pg_server: PostgresServer) -> Iterator[CaptureDb]:
    db = CaptureDb(pg_server)
    yield db
    db.teardown()


def inserted(changes: Iterable[tuple[str, int | None, str]]) -> list[int]:
    """The numbers inserted into ``numbered``, in the order of the changes."""
    return [int(match[1]) for _, _, data in changes if (match := _INSERT_RE.match(data))]


def visible_numbers(pg: psycopg.Connection) -> set[int]:
    return {n for (n,) in pg.execute("SELECT n FROM numbered").fetchall()}


class Writer(threading.Thread):
    """Inserts 1, 2, 3, ... into ``numbered``, one short transaction each, until stopped;
    ``committed`` holds every number whose COMMIT returned."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.committed: list[int] = []
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self._progress = threading.Condition()

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as pg:
                n = 0
                while not self.stopping.is_set():
                    n += 1
                    pg.execute("INSERT INTO numbered VALUES (%s)", (n,))
                    with self._progress:
                        self.committed.append(n)
                        self._progress.notify_all()
        except BaseException as exc:
            self.error = exc
        finally:
            with self._progress:
                self._progress.notify_all()

    def wait_for_commits(self, count: int = 25) -> None:
        with self._progress:
            target = len(self.committed) + count
            done = self._progress.wait_for(
                lambda: len(self.committed) >= target or not self.is_alive(), timeout=60)
        assert done and self.error is None, f"the writer stopped: {self.error!r}"

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)
        assert self.error is None, f"the writer failed: {self.error!r}"


def test_exported_snapshot_and_changes_meet_without_gap_or_overlap(capture: CaptureDb) -> None:
    writer = Writer(capture.url)
    writer.start()
    try:
        writer.wait_for_commits()
        with exported_slot(capture.conn, capture.slot("a")) as slot_a, \
                snapshot_transaction(capture.conn, slot_a.snapshot_name) as pg:
            seen_by_a = visible_numbers(pg)
        writer.wait_for_commits()
        with exported_slot(capture.conn, capture.slot("b")) as slot_b:
            writer.wait_for_commits()  # commits after B's point, while its snapshot lives
            with snapshot_transaction(capture.conn, slot_b.snapshot_name) as pg:
                seen_by_b = visible_numbers(pg)
            a_until_b = inserted(peek_changes(capture.conn, slot_a.name, slot_b.consistent_lsn))
        writer.wait_for_commits()
    finally:
        writer.stop()
    b_after = inserted(peek_changes(capture.conn, slot_b.name, capture.flushed_lsn()))

    assert seen_by_a and seen_by_a < seen_by_b
    assert len(a_until_b) == len(set(a_until_b)) and len(b_after) == len(set(b_after))
    assert set(a_until_b) == seen_by_b - seen_by_a
    assert b_after and not seen_by_b & set(b_after)
    assert seen_by_b | set(b_after) == set(writer.committed)


def test_pg_dump_reads_the_slots_snapshot_while_its_connection_is_open(
    capture: CaptureDb,
) -> None:
    capture.insert([1])
    with exported_slot(capture.conn, capture.slot("dump")) as slot:
        capture.insert([2])
        with capture.conn.subprocess_env() as (env, dsn):
            dump = subprocess.run(
                [require_tool("pg_dump"), "--format=plain", "--data-only", "--no-password",
                 "--table=public.numbered", f"--snapshot={slot.snapshot_name}",
                 f"--dbname={dsn}"],
                env=env, capture_output=True, text=True, check=False,
            )
    assert dump.returncode == 0, dump.stderr
    copied = dump.stdout.split("COPY public.numbered (n) FROM stdin;\n")[1].split("\\.\n")[0]
    assert copied == "1\n"
    assert inserted(peek_changes(capture.conn, slot.name, capture.flushed_lsn())) == [2]


def test_the_snapshot_outlives_idle_timeouts_set_for_the_role(capture: CaptureDb) -> None:
    """A server or role with idle timeouts must not end the idle replication connection,
    which would take the exported snapshot with it."""
    timeouts = "-c idle_in_transaction_session_timeout=100 -c idle_session_timeout=100"
    conn = ConnectionInfo(make_conninfo(capture.conn.conninfo, options=timeouts))
    capture.insert([1])
    with exported_slot(conn, capture.slot("idle")) as slot:
        time.sleep(0.5)  # the timeouts must have passed: there is no event to wait for
        with snapshot_transaction(conn, slot.snapshot_name) as pg:
            assert visible_numbers(pg) == {1}


def test_peek_changes_streams_through_a_server_side_cursor_and_consumes_nothing(
    capture: CaptureDb,
) -> None:
    with exported_slot(capture.conn, capture.slot("peek")) as slot:
        pass
    capture.insert(range(1, 50_001))
    upto = capture.flushed_lsn()

    changes = peek_changes(capture.conn, slot.name, upto, batch=1000)
    first = [next(changes)]
    with capture.connect() as pg:
        (query,) = pg.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (capture.name, PEEK_APPLICATION_NAME),
        ).fetchone() or ("",)
    rows = first + list(changes)

    assert re.match(r'FETCH FORWARD 1000 FROM "pgbackup_peek_', query), query
    assert len(rows) == 50_002  # BEGIN, 50,000 inserts, COMMIT
    assert rows[0][2].startswith("BEGIN ") and rows[-1][2].startswith("COMMIT ")
    assert "(at " in rows[-1][2]  # include-timestamp
    assert {xid for _, xid, _ in rows} == {rows[0][1]} and isinstance(rows[0][1], int)
    assert inserted(rows) == list(range(1, 50_001))
    assert list(peek_changes(capture.conn, slot.name, upto)) == rows


def test_types_outside_pg_catalog_are_printed_schema_qualified(capture: CaptureDb) -> None:
    """test_decoding names types with format_type_be(), which qualifies a type only when
    the search_path does not show it; the peeking session's search_path is pg_catalog."""
    with capture.connect() as pg:
        pg.execute("CREATE TYPE mood AS ENUM ('calm', 'cross')")
        pg.execute("CREATE TABLE moods (id integer PRIMARY KEY, m mood, v varchar(3))")
    with exported_slot(capture.conn, capture.slot("types")) as slot:
        pass
    with capture.connect() as pg:
        pg.execute("INSERT INTO moods VALUES (1, 'calm', 'x')")
    data = [row[2] for row in peek_changes(capture.conn, slot.name, capture.flushed_lsn())]
    assert ("table public.moods: INSERT: id[integer]:1 m[public.mood]:'calm' "
            "v[character varying]:'x'") in data


def test_a_failure_inside_the_block_drops_the_slot_unless_kept(capture: CaptureDb) -> None:
    with pytest.raises(RuntimeError, match="pg_dump failed"), \
            exported_slot(capture.conn, capture.slot("failed")):
        raise RuntimeError("pg_dump failed")
    with pytest.raises(RuntimeError), \
            exported_slot(capture.conn, capture.slot("kept"), keep_on_error=True):
        raise RuntimeError("pg_dump failed")
    assert [slot.name for slot in list_slots(capture.conn, capture.prefix)] == [
        capture.slot("kept")
    ]


def wal_position(capture: CaptureDb) -> int:
    """The server's WAL insert position, in bytes."""
    with capture.connect() as pg:
        row = pg.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def test_list_slots_reports_the_wal_a_slot_retains(capture: CaptureDb) -> None:
    with exported_slot(capture.conn, capture.slot("wal")) as slot:
        pass
    (before,) = list_slots(capture.conn, capture.prefix)
    start = wal_position(capture)
    capture.insert(range(1, 20_001))
    written = wal_position(capture) - start  # by this test and any other at the same time
    (after,) = list_slots(capture.conn, capture.prefix)

    assert (before.name, before.database, before.active) == (slot.name, capture.name, False)
    assert before.restart_lsn and before.confirmed_flush_lsn
    assert before.retained_wal_bytes is not None and after.retained_wal_bytes is not None
    assert written > 0 and after.retained_wal_bytes >= before.retained_wal_bytes + written, written
    assert list_slots(capture.conn, capture.prefix + "none") == []


def test_advance_consumes_changes_and_drop_releases_the_slot(capture: CaptureDb) -> None:
    with exported_slot(capture.conn, capture.slot("adv")) as slot:
        pass
    capture.insert([1])
    middle = capture.flushed_lsn()
    capture.insert([2])
    end = capture.flushed_lsn()

    advance_slot(capture.conn, slot.name, middle)
    assert inserted(peek_changes(capture.conn, slot.name, end)) == [2]
    assert drop_slot(capture.conn, slot.name) is True
    assert drop_slot(capture.conn, slot.name) is False
    assert list_slots(capture.conn, capture.prefix) == []


def test_slot_errors_are_one_sentence(capture: CaptureDb) -> None:
    with pytest.raises(BackupError, match="invalid replication slot name 'Bad-Name'"), \
            exported_slot(capture.conn, "Bad-Name"):
        pass
    with exported_slot(capture.conn, capture.slot("twice")) as slot:
        pass
    with pytest.raises(BackupError, match=f"cannot read in snapshot {slot.snapshot_name} of .*"
                       "invalid snapshot identifier"), \
            snapshot_transaction(capture.conn, slot.snapshot_name):
        pass
    with pytest.raises(BackupError) as caught, \
            exported_slot(capture.conn, capture.slot("twice")):
        pass
    assert str(caught.value) == (
        f"cannot create replication slot {capture.slot('twice')} on "
        f"{capture.conn.redacted()}: replication slot \"{capture.slot('twice')}\" already exists"
    )
    with pytest.raises(BackupError, match="cannot read the changes of slot nosuch"):
        list(peek_changes(capture.conn, "nosuch", capture.flushed_lsn()))
    with pytest.raises(BackupError, match="FFFFFFFF/FFFFFFFF is past the WAL flushed so far"):
        list(peek_changes(capture.conn, capture.slot("twice"), "FFFFFFFF/FFFFFFFF"))


def test_errors_and_readiness_never_show_the_password(password_url: tuple[str, str]) -> None:
    """The least-privilege role of the fixture has no REPLICATION attribute."""
    url, password = password_url
    conn = ConnectionInfo.from_url(url)
    with pytest.raises(BackupError) as caught, exported_slot(conn, "test_slots_password"):
        pass
    readiness = capture_readiness(conn)

    assert "cannot open a replication connection" in str(caught.value)
    assert password not in str(caught.value) and "***" in str(caught.value)
    assert [problem.code for problem in readiness.problems] == ["replication_privilege"]
    assert password not in repr(readiness)


def test_readiness_is_ok_for_a_superuser_on_a_logical_server(capture: CaptureDb) -> None:
    assert capture_readiness(capture.conn).problems == []
    assert capture_readiness(capture.conn).ok


def test_readiness_names_a_missing_replication_privilege(
    capture: CaptureDb, pg_server: PostgresServer
) -> None:
    role = f"slots_plain_{secrets.token_hex(4)}"
    with pg_server.connect() as pg:
        pg.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(role)))
    try:
        url = f"postgresql://{role}@{pg_server.host}:{pg_server.port}/{capture.name}"
        readiness = capture_readiness(ConnectionInfo.from_url(url))
    finally:
        with pg_server.connect() as pg:
            pg.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    assert not readiness.ok
    (problem,) = readiness.problems
    assert problem.code == "replication_privilege"
    assert problem.sentence == (
        f"Role {role} may not use replication slots: it has neither the REPLICATION "
        "attribute nor superuser."
    )
    assert problem.fix == f"ALTER ROLE {role} REPLICATION; (run by a superuser)"


def test_plugin_problem_names_a_plugin_that_cannot_load(capture: CaptureDb) -> None:
    assert plugin_problem(capture.conn) is None
    problem = plugin_problem(capture.conn, "pgbackup_no_such_plugin")
    assert problem is not None and problem.code == "output_plugin"
    assert problem.sentence.startswith(
        "A logical slot with the output plugin pgbackup_no_such_plugin cannot be created: ")


@pytest.fixture(scope="module")
def replica_server() -> Iterator[PostgresServer]:
    """A private server with wal_level = replica, whose pg_hba.conf the tests rewrite."""
    server = PostgresServer(settings={"wal_level": "replica", "fsync": "off"}).start()
    yield server
    server.stop()


@pytest.fixture
def hba(replica_server: PostgresServer) -> Iterator[Path]:
    """replica_server's pg_hba.conf, put back (and reloaded) after the test."""
    path = replica_server.datadir / "pg_hba.conf"
    original = path.read_text()
    yield path
    path.write_text(original)
    _reload(replica_server)


def _reload(server: PostgresServer) -> None:
    with server.connect() as pg:
        pg.execute("SELECT pg_reload_conf()")


def _wait_until_refused(conninfo: str) -> None:
    """pg_reload_conf() only signals the postmaster: wait until the new rules refuse."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            psycopg.connect(conninfo, connect_timeout=5).close()
        except psycopg.OperationalError:
            return
        time.sleep(0.05)
    pytest.fail("the new pg_hba.conf did not take effect")


def test_readiness_names_wal_level_replica(replica_server: PostgresServer) -> None:
    readiness = capture_readiness(ConnectionInfo.from_url(replica_server.url()))
    assert not readiness.ok
    (problem,) = readiness.problems
    assert problem.code == "wal_level"
    assert problem.sentence == (
        "Change capture needs wal_level = logical, but the server runs with "
        "wal_level = replica.")
    assert problem.fix == "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL."


def test_pg_hba_without_replication_lines_still_admits_a_logical_replication_connection(
    replica_server: PostgresServer, hba: Path
) -> None:
    """The keyword ``replication`` in pg_hba.conf is for physical replication only: a
    ``replication=database`` connection is matched by its database, like any other."""
    hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    _reload(replica_server)
    _wait_until_refused(make_conninfo(replica_server.url(), replication="true"))

    readiness = capture_readiness(ConnectionInfo.from_url(replica_server.url()))
    assert [problem.code for problem in readiness.problems] == ["wal_level"]


def test_pg_hba_refusal_names_the_line_to_add(
    replica_server: PostgresServer, hba: Path
) -> None:
    replica_server.create_database("refused_db")
    try:
        hba.write_text("local all all trust\nhost postgres all 127.0.0.1/32 trust\n"
                       "host replication all 127.0.0.1/32 trust\n")
        _reload(replica_server)
        _wait_until_refused(replica_server.url("refused_db"))
        refused = ConnectionInfo.from_url(replica_server.url("refused_db"))
        problem = replication_connection_problem(refused, "postgres", "127.0.0.1/32")
        with pytest.raises(BackupError, match="cannot check change capture on"):
            capture_readiness(refused)
    finally:
        replica_server.drop_database("refused_db")

    assert problem is not None and problem.code == "pg_hba"
    assert problem.sentence.startswith(
        "pg_hba.conf refuses the replication connection of role postgres to database "
        "refused_db: no pg_hba.conf entry for host \"127.0.0.1\"")
    assert problem.fix.startswith(
        "Add the line `host refused_db postgres 127.0.0.1/32 scram-sha-256` to pg_hba.conf")


def test_readiness_names_full_slots_and_wal_senders() -> None:
    server = PostgresServer(settings={
        "fsync": "off", "max_replication_slots": "0", "max_wal_senders": "0",
    }).start()
    try:
        readiness = capture_readiness(ConnectionInfo.from_url(server.url()))
    finally:
        server.stop()
    assert [(p.code, p.fix) for p in readiness.problems] == [
        ("replication_slots", "ALTER SYSTEM SET max_replication_slots = 2; then restart "
         "PostgreSQL (or drop unused slots with pg_drop_replication_slot)."),
        ("wal_senders", "ALTER SYSTEM SET max_wal_senders = 1; then restart PostgreSQL."),
    ]
    assert readiness.problems[1].sentence == (
        "No WAL sender is free for the replication connection that creates a slot: "
        "0 of max_wal_senders = 0 are in use.")
