"""restore_archive and restore_into_new_database against a real PostgreSQL 15 and Pagila."""

from __future__ import annotations

import hashlib
import secrets
import shlex
import stat
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgbackup import ConnectionInfo, LocalStorage, Manifest, new_backup_id, run_dump
from pgbackup import restore as restore_module
from pgbackup.dbadmin import database_exists, swap_databases
from pgbackup.restore import (
    RestoreError,
    RestoreProgress,
    restore_archive,
    restore_into_new_database,
)
from tests.engine.conftest import PASSWORD_ROLE
from tests.engine.helpers import copy_public_schema_owner, require_tool
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer


@pytest.fixture
def fake_pg_restore(tmp_path: Path) -> Callable[[str], str]:
    """Factory for pg_restore wrapper scripts: ``body`` runs before the real pg_restore is
    exec'd (``$REAL`` names it); ``$LISTING`` is 1 in the ``--list`` pass."""
    real = require_tool("pg_restore")

    def make(body: str) -> str:
        script = tmp_path / f"pg_restore_wrapper_{secrets.token_hex(3)}"
        script.write_text(
            "#!/bin/bash\n"
            f"REAL={shlex.quote(real)}\n"
            'LISTING=0; for arg in "$@"; do [ "$arg" = --list ] && LISTING=1; done\n'
            f"{body}\n"
            'exec "$REAL" "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        return str(script)

    return make


def backup(url: str, storage: LocalStorage, kind: str = "full", **kwargs: object) -> Manifest:
    return run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(), kind, **kwargs)


def replace_artifact(storage: LocalStorage, manifest: Manifest, data: bytes) -> Manifest:
    """Store ``data`` as the artifact, with a manifest that vouches for it."""
    with storage.atomic_writer(manifest.artifact) as handle:
        handle.write(data)
    return manifest.model_copy(
        update={"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    )


def table_names(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def test_full_backup_restores_identically_with_owners_and_grants(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_module, "PROGRESS_INTERVAL", 0.01)
    manifest = backup(pagila, storage)
    events: list[RestoreProgress] = []

    outcome = restore_into_new_database(server, new_name, storage, manifest,
                                        progress=events.append)

    target = pg_server.url(new_name)
    assert schema_dump(target) == schema_dump(pagila)
    assert table_fingerprints(target) == table_fingerprints(pagila)
    total = outcome.items_total
    assert total > 200 and outcome.warnings == [] and outcome.duration_ms > 0
    assert events[0] == RestoreProgress(0, total, None)
    assert events[-1] == RestoreProgress(total, total, None)
    done = [event.items_done for event in events]
    assert done == sorted(done) and len(set(done)) > 3
    assert any('data for table "public.' in (event.current_item or "") for event in events)


def test_uncompressed_backup_restores_without_owners(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
    pg_server: PostgresServer,
) -> None:
    manifest = backup(pagila, storage, compress=False)
    assert manifest.compression == "none"

    restore_into_new_database(server, new_name, storage, manifest, no_owner=True)

    target = pg_server.url(new_name)
    copy_public_schema_owner(pagila, target)
    assert schema_dump(target) == schema_dump(pagila)
    assert table_fingerprints(target) == table_fingerprints(pagila)


def test_no_acl_restores_no_grants(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
    pg_server: PostgresServer,
) -> None:
    acl = "SELECT relacl::text FROM pg_class WHERE oid = 'public.actor'::regclass"
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("GRANT SELECT ON actor TO pg_monitor")
        assert "pg_monitor=r/postgres" in conn.execute(acl).fetchone()[0]
    manifest = backup(pagila, storage)

    with_grants = restore_into_new_database(server, new_name, storage, manifest)
    pg_server.drop_database(new_name)
    without = restore_into_new_database(server, new_name, storage, manifest, no_acl=True)

    with psycopg.connect(pg_server.url(new_name)) as conn:
        assert conn.execute(acl).fetchone()[0] is None
    assert without.items_total < with_grants.items_total  # the ACL items are not counted


def test_schema_only_restores_the_schema_and_no_rows(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
    pg_server: PostgresServer,
) -> None:
    manifest = backup(pagila, storage, kind="schema-only")
    events: list[RestoreProgress] = []

    outcome = restore_into_new_database(server, new_name, storage, manifest,
                                        progress=events.append)

    target = pg_server.url(new_name)
    assert schema_dump(target) == schema_dump(pagila)
    assert {count for count, _ in table_fingerprints(target).values()} == {0}
    assert events[-1] == RestoreProgress(outcome.items_total, outcome.items_total, None)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda data: data[: len(data) // 2], "is truncated or was altered"),
    (lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:], "does not match its manifest"),
])
def test_artifact_that_differs_from_its_manifest_restores_nothing(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
    fake_pg_restore: Callable[[str], str], tmp_path: Path,
    damage: Callable[[bytes], bytes], message: str,
) -> None:
    manifest = backup(pagila, storage)
    artifact = storage.path(manifest.artifact)
    artifact.write_bytes(damage(artifact.read_bytes()))
    started = tmp_path / "started"

    with pytest.raises(RestoreError, match=message):
        restore_into_new_database(server, new_name, storage, manifest,
                                  pg_restore=fake_pg_restore(f"touch {started}"))
    assert not database_exists(server, new_name)
    assert not started.exists()  # refused before pg_restore ever ran


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize(("cut", "message"), [
    (0.5, "pg_restore failed with exit status 1"),
    (0.0001, "pg_restore --list failed with exit status 1"),
])
def test_truncated_archive_restores_nothing(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
    compress: bool, cut: float, message: str,
) -> None:
    """Even when the manifest vouches for a cut-off archive, pg_restore finds the end
    missing and its single transaction commits nothing; the new database is dropped."""
    manifest = backup(pagila, storage, compress=compress)
    data = storage.path(manifest.artifact).read_bytes()
    damaged = replace_artifact(storage, manifest, data[: int(len(data) * cut)])

    with pytest.raises(RestoreError, match=message):
        restore_into_new_database(server, new_name, storage, damaged)
    assert not database_exists(server, new_name)


def test_undecompressable_artifact_is_a_restore_error(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
) -> None:
    manifest = backup(pagila, storage)
    data = bytearray(storage.path(manifest.artifact).read_bytes())
    data[0] ^= 0xFF  # no zstd frame
    damaged = replace_artifact(storage, manifest, bytes(data))

    with pytest.raises(RestoreError, match="cannot decompress"):
        restore_into_new_database(server, new_name, storage, damaged)
    assert not database_exists(server, new_name)


def test_existing_database_is_refused_and_untouched(
    pagila: str, storage: LocalStorage, server: ConnectionInfo,
) -> None:
    manifest = backup(pagila, storage)
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("DELETE FROM payment")
    before = table_fingerprints(pagila)
    name = ConnectionInfo.from_url(pagila).dbname

    with pytest.raises(RestoreError, match=f"database {name} already exists"):
        restore_into_new_database(server, name, storage, manifest)
    assert table_fingerprints(pagila) == before


def test_failed_restore_commits_nothing(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str],
) -> None:
    """pg_restore creates dozens of objects before it reaches the clashing table: with
    --single-transaction none of them survives the error."""
    manifest = backup(pagila, storage)
    target = scratch_db()
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE store (note text)")

    with pytest.raises(RestoreError, match=r"exit status 1") as error:
        restore_archive(ConnectionInfo.from_url(target), storage, manifest)
    assert 'relation "store" already exists' in str(error.value)
    assert "Command was: CREATE TABLE public.store" in str(error.value)
    assert table_names(target) == ["store"]


class Cancelled(Exception):
    pass


def test_cancelling_midway_commits_nothing(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_module, "PROGRESS_INTERVAL", 0.01)
    manifest = backup(pagila, storage)
    target = scratch_db()

    def cancel_midway(progress: RestoreProgress) -> None:
        if 0 < progress.items_done < progress.items_total:
            raise Cancelled  # some items are in the target, uncommitted

    with pytest.raises(Cancelled):
        restore_archive(ConnectionInfo.from_url(target), storage, manifest,
                        progress=cancel_midway)
    deadline = time.monotonic() + 10  # the server rolls back once it sees the client gone
    while table_names(target) or open_sessions(target):
        assert time.monotonic() < deadline, "restore was not rolled back"
        time.sleep(0.05)


def open_sessions(url: str) -> int:
    dbname = ConnectionInfo.from_url(url).dbname
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [dbname],
        ).fetchone()[0]


def test_cancelling_kills_pg_restore_and_drops_the_new_database(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
    fake_pg_restore: Callable[[str], str],
) -> None:
    """The wrapper's ``sleep`` is killed with pg_restore's process group (else it would
    hold the pipes for a minute)."""

    def cancel(_progress: RestoreProgress) -> None:
        time.sleep(0.5)  # let the wrapper start its child
        raise Cancelled

    slow = fake_pg_restore('[ "$LISTING" = 1 ] || sleep 60')
    started = time.monotonic()
    with pytest.raises(Cancelled):
        restore_into_new_database(server, new_name, storage, backup(pagila, storage),
                                  progress=cancel, pg_restore=slow)
    assert time.monotonic() - started < 30
    assert not database_exists(server, new_name)


def test_warnings_are_reported(
    scratch_db: Callable[[], str], storage: LocalStorage, server: ConnectionInfo,
    new_name: str,
) -> None:
    source = scratch_db()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION warn(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE "
                     "AS $$BEGIN RAISE WARNING 'checking %', $1; RETURN true; END$$")
        conn.execute("CREATE TABLE t (x int CHECK (warn(x)))")
        conn.execute("INSERT INTO t VALUES (1), (2)")

    outcome = restore_into_new_database(server, new_name, storage, backup(source, storage))

    assert outcome.warnings == ["WARNING:  checking 1", "WARNING:  checking 2"]


def test_restore_over_a_live_database_by_swapping(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
    pg_server: PostgresServer,
) -> None:
    live = ConnectionInfo.from_url(pagila).dbname
    backed_up = table_fingerprints(pagila)
    manifest = backup(pagila, storage)
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("DELETE FROM payment")
    damaged = table_fingerprints(pagila)

    restore_into_new_database(server, new_name, storage, manifest, like=live)
    held = psycopg.connect(pagila, autocommit=True)
    retired = swap_databases(server, live, new_name)
    try:
        assert table_fingerprints(pagila) == backed_up
        assert table_fingerprints(pg_server.url(retired)) == damaged
        assert not database_exists(server, new_name)
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    finally:
        held.close()
        pg_server.drop_database(retired)


def test_password_stays_out_of_argv_and_errors(
    password_url: tuple[str, str], pagila: str, storage: LocalStorage,
    pg_server: PostgresServer, fake_pg_restore: Callable[[str], str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restore as a least-privilege role owning the target database (so no owners and
    no grants), logging in with a scram password."""
    url, password = password_url
    manifest = backup(pagila, storage)
    name = f"owned_{secrets.token_hex(4)}"
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(PASSWORD_ROLE)))
    target = ConnectionInfo.from_url(url).for_database(name)
    monkeypatch.setenv("PGPASSWORD", "wrong-password")  # must not reach pg_restore
    argv_file, env_file = tmp_path / "argv", tmp_path / "env"
    recorder = fake_pg_restore(
        f"printf '%s\\n' \"$@\" >> {argv_file}\n"
        f'printf \'%s\\n\' "${{PGPASSWORD-unset}}" "$PGPASSFILE" '
        f'"$(stat -c %a "$PGPASSFILE")" > {env_file}'
    )
    try:
        restore_archive(target, storage, manifest, no_owner=True, no_acl=True,
                        pg_restore=recorder)
        assert table_fingerprints(pg_server.url(name)) == table_fingerprints(pagila)

        argv = argv_file.read_text()
        assert argv.count("--dbname=") == 1 and "--list" in argv
        assert password not in argv and "password=" not in argv
        pgpassword, passfile, passfile_mode = env_file.read_text().splitlines()
        assert (pgpassword, passfile_mode) == ("unset", "600")
        assert not Path(passfile).exists()

        leaky = fake_pg_restore(
            f"echo {shlex.quote(f'pg_restore: error: bad password {password}')} >&2; exit 1")
        with pytest.raises(RestoreError, match=r"bad password \*\*\*") as error:
            restore_archive(target, storage, manifest, pg_restore=leaky)
        assert password not in str(error.value)
    finally:
        pg_server.drop_database(name)


def test_missing_artifact_and_missing_pg_restore(
    pagila: str, storage: LocalStorage, server: ConnectionInfo, new_name: str,
) -> None:
    manifest = backup(pagila, storage)
    with pytest.raises(RestoreError, match="pg_restore not found"):
        restore_into_new_database(server, new_name, storage, manifest,
                                  pg_restore="/nonexistent/bin/pg_restore")
    storage.delete(manifest.artifact)
    with pytest.raises(RestoreError, match="is missing from storage"):
        restore_into_new_database(server, new_name, storage, manifest)
    assert not database_exists(server, new_name)
