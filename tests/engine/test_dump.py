"""run_dump against a real PostgreSQL 15 and Pagila, checked with stock tools only."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgbackup import (
    BackupError,
    ConnectionInfo,
    DumpProgress,
    LocalStorage,
    Manifest,
    TableInfo,
    manifest_name,
    new_backup_id,
    read_manifest,
    run_dump,
)
from pgbackup.globals import globals_name
from pgbackup.recovery import describe_database
from tests.engine.conftest import PASSWORD_ROLE
from tests.engine.helpers import (
    copy_public_schema_owner,
    decompressed,
    require_tool,
    restore_with_stock_tools,
    row_counts_of_tables,
)
from tests.support.dbcompare import schema_dump, table_fingerprints

ROOT = Path(__file__).resolve().parents[2]


def backup(url: str, storage: LocalStorage, kind: str = "full", **kwargs: object) -> Manifest:
    return run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(), kind, **kwargs)


def stored_files(storage: LocalStorage) -> list[str]:
    return sorted(os.listdir(storage.root))


def stats_of(url: str, expected: list[TableInfo]) -> list[TableInfo]:
    """The tables' rows and checksums now, computed as ``expected``'s were."""
    return describe_database(ConnectionInfo.from_url(url), expected)


def test_full_backup_restores_identically_with_stock_tools(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str]
) -> None:
    events: list[DumpProgress] = []
    manifest = backup(pagila, storage, progress=events.append)
    artifact = storage.path(manifest.artifact)
    assert artifact.name == f"{manifest.backup_id}.dump.zst"

    target = scratch_db()
    restore_with_stock_tools(artifact, target)
    copy_public_schema_owner(pagila, target)

    assert schema_dump(target) == schema_dump(pagila)
    assert table_fingerprints(target) == table_fingerprints(pagila)
    total = len(manifest.tables)
    assert events[0] == DumpProgress(0, None, 0, total)
    assert events[-1] == DumpProgress(manifest.size, None, total, total)
    assert [e.bytes_written for e in events] == sorted(e.bytes_written for e in events)


def test_manifest_describes_the_stored_backup(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage)
    artifact = storage.path(manifest.artifact)

    assert read_manifest(storage, manifest.backup_id) == manifest
    assert stored_files(storage) == sorted([manifest.artifact, manifest_name(manifest.backup_id),
                                            globals_name(manifest.artifact)])
    sha256sum = subprocess.run(
        [require_tool("sha256sum"), str(artifact)], capture_output=True, text=True, check=True
    )
    assert sha256sum.stdout.split()[0] == manifest.sha256
    assert manifest.size == artifact.stat().st_size
    assert {t.qualified_name: t.rows for t in manifest.tables} == row_counts_of_tables(pagila)
    assert manifest.tables == stats_of(pagila, manifest.tables)  # with their checksums
    assert all(t.checksum for t in manifest.tables)
    assert (manifest.type, manifest.compression, manifest.dump_format) == ("full", "zstd", "custom")
    assert manifest.database == ConnectionInfo.from_url(pagila).dbname
    assert manifest.server_version.startswith("15.") and " " not in manifest.server_version
    assert manifest.tool == "pg-backup-manager 0.1.0"
    assert manifest.snapshot and manifest.duration_ms > 0 and manifest.parent_id is None
    for name in stored_files(storage):
        assert stat.S_IMODE(storage.path(name).stat().st_mode) == 0o600


def test_counts_and_data_come_from_one_snapshot(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str],
    fake_pg_dump: Callable[[str], str],
) -> None:
    """A row committed after the snapshot but before pg_dump even connects (the wrapper
    sleeps first) is in neither the manifest's counts nor the dump."""
    before = table_fingerprints(pagila)
    inserted: list[bool] = []

    def insert_once(_progress: DumpProgress) -> None:
        if not inserted:
            with psycopg.connect(pagila, autocommit=True) as conn:
                conn.execute("INSERT INTO actor (first_name, last_name) VALUES ('LATE', 'ROW')")
            inserted.append(True)

    manifest = backup(pagila, storage, progress=insert_once, pg_dump=fake_pg_dump("sleep 1"))

    assert inserted
    assert table_fingerprints(pagila)["public.actor"][0] == 201
    counts = {t.qualified_name: t.rows for t in manifest.tables}
    assert counts["public.actor"] == before["public.actor"][0] == 200
    target = scratch_db()
    restore_with_stock_tools(storage.path(manifest.artifact), target)
    assert table_fingerprints(target) == before
    assert stats_of(target, manifest.tables) == manifest.tables
    assert stats_of(pagila, manifest.tables) != manifest.tables


def test_checksums_can_be_turned_off(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage, checksums=False)
    assert {t.qualified_name: t.rows for t in manifest.tables} == row_counts_of_tables(pagila)
    assert all(t.checksum is None for t in manifest.tables)


def test_server_timeouts_do_not_end_the_snapshot_early(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str],
    fake_pg_dump: Callable[[str], str],
) -> None:
    """The exporting transaction idles while pg_dump starts: a short server-side
    idle_in_transaction_session_timeout must not kill it before pg_dump imports the snapshot."""
    dbname = ConnectionInfo.from_url(pagila).dbname
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "ALTER DATABASE {} SET idle_in_transaction_session_timeout = '100ms'"
        ).format(sql.Identifier(dbname)))

    manifest = backup(pagila, storage, pg_dump=fake_pg_dump("sleep 1"))

    assert {t.qualified_name: t.rows for t in manifest.tables} == row_counts_of_tables(pagila)


def test_schema_only_restores_the_schema_and_no_rows(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str]
) -> None:
    manifest = backup(pagila, storage, kind="schema-only")
    assert manifest.type == "schema-only"
    assert manifest.tables
    assert all(t.rows is None and t.checksum is None for t in manifest.tables)

    target = scratch_db()
    restore_with_stock_tools(storage.path(manifest.artifact), target)
    copy_public_schema_owner(pagila, target)
    assert schema_dump(target) == schema_dump(pagila)
    assert {count for count, _ in table_fingerprints(target).values()} == {0}


def test_uncompressed_backup_is_a_plain_custom_archive(
    pagila: str, storage: LocalStorage
) -> None:
    manifest = backup(pagila, storage, compress=False)
    artifact = storage.path(manifest.artifact)
    assert artifact.name.endswith(".dump") and manifest.compression == "none"
    assert artifact.read_bytes()[:5] == b"PGDMP"
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == manifest.sha256
    listing = subprocess.run(
        [require_tool("pg_restore"), "--list", str(artifact)],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "TABLE DATA public actor" in listing


@pytest.mark.parametrize(("script", "expected"), [
    ('"$REAL" "$@"; echo "boom: disk on fire" >&2; exit 1', "boom: disk on fire"),
    ('exec "$REAL" "$@" --dbname=no_such_database', 'database "no_such_database" does not exist'),
])
def test_failing_pg_dump_leaves_nothing_behind(
    pagila: str, storage: LocalStorage, fake_pg_dump: Callable[[str], str],
    script: str, expected: str,
) -> None:
    with pytest.raises(BackupError, match="exit status 1") as error:
        backup(pagila, storage, pg_dump=fake_pg_dump(script))
    assert expected in str(error.value)
    assert stored_files(storage) == []


class Cancelled(Exception):
    pass


def test_raising_from_progress_cancels_cleanly(
    pagila: str, storage: LocalStorage, fake_pg_dump: Callable[[str], str]
) -> None:
    """A progress callback may cancel a dump by raising: pg_dump and a wrapper's children
    are killed at once (else the orphaned ``sleep`` would hold the pipes for a minute)."""

    def cancel(_progress: DumpProgress) -> None:
        time.sleep(0.5)  # let the wrapper start its child
        raise Cancelled

    started = time.monotonic()
    with pytest.raises(Cancelled):
        backup(pagila, storage, progress=cancel, pg_dump=fake_pg_dump("sleep 60"))
    assert time.monotonic() - started < 30
    assert stored_files(storage) == []


def test_cancelling_at_the_final_progress_call_keeps_nothing(
    pagila: str, storage: LocalStorage
) -> None:
    def cancel_when_done(progress: DumpProgress) -> None:
        if progress.bytes_written and progress.tables_done == progress.tables_total:
            raise Cancelled

    with pytest.raises(Cancelled):
        backup(pagila, storage, progress=cancel_when_done)
    assert stored_files(storage) == []


def test_unreachable_database_leaves_nothing_behind(pagila: str, storage: LocalStorage) -> None:
    conn = ConnectionInfo.from_url(pagila).for_database("no_such_database")
    with pytest.raises(BackupError, match='database "no_such_database" does not exist'):
        run_dump(conn, storage, new_backup_id(), "full")
    assert stored_files(storage) == []


def test_missing_pg_dump(pagila: str, storage: LocalStorage) -> None:
    with pytest.raises(BackupError, match="pg_dump not found"):
        backup(pagila, storage, pg_dump="/nonexistent/bin/pg_dump")
    assert stored_files(storage) == []


def test_existing_backup_is_never_overwritten(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage)
    conn = ConnectionInfo.from_url(pagila)
    with pytest.raises(BackupError, match="already exists"):
        run_dump(conn, storage, manifest.backup_id, "full")
    assert read_manifest(storage, manifest.backup_id) == manifest


def test_password_stays_out_of_argv_env_manifest_and_errors(
    password_url: tuple[str, str], storage: LocalStorage, fake_pg_dump: Callable[[str], str],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, password = password_url
    monkeypatch.setenv("PGPASSWORD", "wrong-password")  # must not reach pg_dump
    argv_file, env_file = tmp_path / "argv", tmp_path / "env"
    recorder = fake_pg_dump(
        f"printf '%s\\n' \"$@\" > {argv_file}\n"
        f'printf \'%s\\n\' "${{PGPASSWORD-unset}}" "$PGPASSFILE" '
        f'"$(stat -c %a "$PGPASSFILE")" > {env_file}'
    )

    manifest = backup(url, storage, pg_dump=recorder)

    argv = argv_file.read_text()
    assert "--dbname=" in argv and password not in argv and "password=" not in argv
    pgpassword, passfile, passfile_mode = env_file.read_text().splitlines()
    assert (pgpassword, passfile_mode) == ("unset", "600")
    assert not Path(passfile).exists()
    manifest_text = storage.path(manifest_name(manifest.backup_id)).read_text()
    for secret in (password, PASSWORD_ROLE, "127.0.0.1"):
        assert secret not in manifest_text
    assert password.encode() not in decompressed(storage.path(manifest.artifact))
    assert sum(t.rows or 0 for t in manifest.tables) > 40000

    leaky = fake_pg_dump(f"echo {shlex.quote(f'pg_dump: error: bad password {password}')} >&2\n"
                         "exit 1")
    with pytest.raises(BackupError, match=r"bad password \*\*\*") as error:
        backup(url, storage, pg_dump=leaky)
    assert password not in str(error.value)

    wrong = url.replace("s3cr%3Aet", "wr0ng")
    with pytest.raises(BackupError, match="password authentication failed") as error:
        backup(wrong, storage)
    assert "wr0ng" not in str(error.value)


# Compressing in the calling thread: a threaded compressor (the default) writes nothing of
# a dump as small as Pagila's before its frame ends, so there would be no partial to see.
CHILD = """
import sys
from pgbackup import ConnectionInfo, LocalStorage, Zstd, run_dump
url, root, backup_id, pg_dump = sys.argv[1:]
run_dump(ConnectionInfo.from_url(url), LocalStorage(root), backup_id, "full", pg_dump=pg_dump,
         zstd=Zstd(threads=0))
"""


def test_killed_dump_leaves_only_a_partial(
    pagila: str, storage: LocalStorage, fake_pg_dump: Callable[[str], str]
) -> None:
    """SIGKILL mid-dump (pg_dump's output is in, its exit is not): no complete-looking file."""
    stalled = fake_pg_dump('"$REAL" "$@"; sleep 60; exit 1')
    backup_id = new_backup_id()
    artifact = f"{backup_id}.dump.zst"
    partial = storage.root / f".{artifact}.partial"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, pagila, str(storage.root), backup_id, stalled],
        cwd=ROOT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size > 0):
            assert child.poll() is None and time.monotonic() < deadline, "dump did not start"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    assert storage.list_partials() == [artifact]
    assert not storage.exists(artifact) and not storage.exists(manifest_name(backup_id))
    assert stat.S_IMODE(partial.stat().st_mode) == 0o600
    assert storage.remove_partial_for(artifact)
    assert stored_files(storage) == []


def test_snapshot_backend_terminated_mid_dump_leaves_no_file(
    pagila: str, storage: LocalStorage
) -> None:
    """pg_dump imports the snapshot and finishes, but the transaction that exported it is
    terminated meanwhile: the error surfaces only when the snapshot is released, after the
    artifact was complete. A backup that failed owns no file, whenever it fails."""
    terminated: list[int] = []

    def terminate_snapshot_holder(progress: DumpProgress) -> None:
        if terminated or progress.bytes_written == 0:  # pg_dump has not imported it yet
            return
        with psycopg.connect(pagila, autocommit=True) as pg:
            terminated.extend(pid for (pid,) in pg.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name <> 'pg_dump' "
                "AND backend_type = 'client backend'"))
            for pid in terminated:
                pg.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])

    with pytest.raises(BackupError, match="terminat"):
        backup(pagila, storage, compress=False, progress=terminate_snapshot_holder)
    assert terminated, "the snapshot's backend was not found"
    assert stored_files(storage) == []
