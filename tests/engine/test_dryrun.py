"""analyze_restore against a real PostgreSQL 15 and Pagila: right answers, nothing changed."""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgbackup import ConnectionInfo, LocalStorage, Manifest, new_backup_id, run_dump
from pgbackup.dryrun import (
    NO_PAST_RESTORE,
    DryRunReport,
    Estimate,
    TableChange,
    analyze_restore,
    read_only_snapshot,
)
from tests.engine.helpers import require_tool, row_counts_of_tables
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer


def backup(url: str, storage: LocalStorage, kind: str = "full") -> Manifest:
    return run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(), kind)


def analyze(url: str, storage: LocalStorage, manifest: Manifest, **kwargs: Any) -> DryRunReport:
    kwargs.setdefault("mode", "overwrite")
    return analyze_restore(ConnectionInfo.from_url(url), storage, manifest, **kwargs)


def execute(url: str, *statements: str | sql.Composable) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def server_state(url: str, pg_server: PostgresServer) -> tuple[Any, ...]:
    """The database's schema and contents, and the server's databases and roles."""
    with pg_server.connect() as conn:
        databases = sorted(row[0] for row in conn.execute("SELECT datname FROM pg_database"))
        roles = sorted(row[0] for row in conn.execute("SELECT rolname FROM pg_roles"))
    return schema_dump(url), table_fingerprints(url), databases, roles


def dbname(url: str) -> str:
    return ConnectionInfo.from_url(url).dbname


def test_overwrite_reports_what_changed_and_changes_nothing(
    pagila: str, storage: LocalStorage, pg_server: PostgresServer
) -> None:
    manifest = backup(pagila, storage)
    execute(
        pagila,
        "INSERT INTO actor (first_name, last_name) VALUES ('NEW', 'A'), ('NEW', 'B'), ('NEW', 'C')",
        "DELETE FROM payment_p2022_02 WHERE payment_id IN "
        "(SELECT payment_id FROM payment_p2022_02 ORDER BY payment_id LIMIT 5)",
        "DROP TABLE film_actor CASCADE",
        "CREATE TABLE after_backup (note text)",
        "INSERT INTO after_backup VALUES ('a'), ('b')",
    )
    before = server_state(pagila, pg_server)

    report = analyze(pagila, storage, manifest, mode="overwrite")

    assert server_state(pagila, pg_server) == before
    rows = {table.qualified_name: table.rows for table in manifest.tables}
    assert report.changes.dropped == [TableChange("public.after_backup", 2, 0, -2)]
    film_actor = rows["public.film_actor"]
    assert report.changes.created == [TableChange("public.film_actor", 0, film_actor, film_actor)]
    replaced = {change.table: change for change in report.changes.replaced}
    assert replaced.pop("public.actor") == TableChange("public.actor", 203, 200, -3)
    assert replaced.pop("public.payment_p2022_02").delta == 5
    assert {change.delta for change in replaced.values()} == {0}
    assert {t.qualified_name: t.rows for t in report.target.tables} == (
        row_counts_of_tables(pagila)
    )
    assert report.target.exists and report.target.size > 0
    assert report.backup.tables[0].rows == manifest.tables[0].rows
    assert report.backup.toc_entries and report.backup.toc_entries > 200
    assert report.can_restore and report.errors == []
    assert any("public.after_backup (2 rows)" in warning for warning in report.warnings)
    assert any("public.actor (203 → 200)" in warning for warning in report.warnings)

    # Data, not JSON (the app shapes it: tests/test_serializers.py); times are aware.
    assert report.mode == "overwrite"
    assert report.changes.dropped == [TableChange("public.after_backup", 2, 0, -2)]
    assert report.backup.id == manifest.backup_id
    assert report.backup.created.utcoffset() == timedelta(0)
    assert report.compatibility.server_version.ok is True


def test_the_dry_run_session_cannot_write(pagila: str) -> None:
    with read_only_snapshot(ConnectionInfo.from_url(pagila)) as pg:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            pg.execute("CREATE TABLE written (id int)")
        pg.execute("ROLLBACK")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # outside the transaction
            pg.execute("CREATE TABLE written (id int)")


def test_new_database_mode(pagila: str, storage: LocalStorage, pg_server: PostgresServer) -> None:
    manifest = backup(pagila, storage)
    taken = analyze(pagila, storage, manifest, mode="new-database", new_database=dbname(pagila))
    assert taken.target.exists and not taken.can_restore
    assert taken.errors == [
        f"Database {dbname(pagila)} already exists: a new-database restore only creates a "
        "database, so pick a name that is not taken."
    ]

    name = f"fresh_{secrets.token_hex(4)}"
    fresh = analyze(pagila, storage, manifest, mode="new-database", new_database=name)

    assert fresh.can_restore and fresh.errors == [] and fresh.warnings == []
    assert (fresh.target.database, fresh.target.exists, fresh.target.tables) == (name, False, [])
    tables = sorted(manifest.tables, key=lambda table: table.qualified_name)
    assert fresh.changes.created == [
        TableChange(t.qualified_name, 0, t.rows, t.rows, t.partition_of) for t in tables
    ]
    assert fresh.changes.dropped == fresh.changes.replaced == []
    assert fresh.connections == [] and fresh.disk.safety_backup_bytes is None
    assert name not in server_state(pagila, pg_server)[2]


@pytest.fixture
def clerk_roles(pagila: str) -> Iterator[tuple[str, str]]:
    """Two roles: one to own a table, one to be granted on another (dropped afterwards)."""
    suffix = secrets.token_hex(3)
    roles = (f"clerk_owner_{suffix}", f"clerk_reader_{suffix}")
    execute(pagila, *(sql.SQL("CREATE ROLE {}").format(sql.Identifier(r)) for r in roles))
    yield roles
    with psycopg.connect(pagila, autocommit=True) as conn:
        for role in roles:
            if conn.execute("SELECT FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_roles_missing_on_the_target_are_warned_about(
    pagila: str, storage: LocalStorage, clerk_roles: tuple[str, str]
) -> None:
    owner, reader = (sql.Identifier(role) for role in clerk_roles)
    execute(
        pagila,
        "CREATE TABLE clerk_notes (note text)",
        sql.SQL("ALTER TABLE clerk_notes OWNER TO {}").format(owner),
        sql.SQL("GRANT SELECT ON actor TO {}").format(reader),
    )
    manifest = backup(pagila, storage)
    execute(
        pagila,
        "DROP TABLE clerk_notes",
        sql.SQL("REVOKE ALL ON actor FROM {}").format(reader),
        sql.SQL("DROP ROLE {}, {}").format(owner, reader),
    )

    report = analyze(pagila, storage, manifest, mode="new-database",
                     new_database=f"copy_{secrets.token_hex(4)}")

    assert report.compatibility.roles_missing == sorted(clerk_roles)
    assert report.compatibility.roles_referenced == sorted(["postgres", *clerk_roles])
    (warning,) = report.warnings
    assert all(role in warning for role in clerk_roles)
    assert "--no-owner and --no-privileges" in warning
    assert "owned by the restoring user postgres" in warning
    assert report.can_restore


def test_open_connections_are_listed(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage)
    own = ConnectionInfo.from_url(f"{pagila}?application_name=the-dry-run")
    with (
        psycopg.connect(pagila, application_name="till-1") as till_1,
        psycopg.connect(pagila, application_name="till-2") as till_2,
    ):
        report = analyze_restore(own, storage, manifest, mode="overwrite")
        pids = {till_1.info.backend_pid, till_2.info.backend_pid}

    listed = {c.pid: c for c in report.connections}
    assert pids <= listed.keys()
    assert {listed[pid].application for pid in pids} == {"till-1", "till-2"}
    assert {(listed[pid].user, listed[pid].client_address) for pid in pids} == {
        ("postgres", "127.0.0.1")
    }
    assert "the-dry-run" not in {c.application for c in report.connections}
    (warning,) = [w for w in report.warnings if "open connection(s)" in w]
    assert f"to {dbname(pagila)} will be cut" in warning
    assert all(f"pid {pid} (postgres, till-" in warning for pid in pids)


def test_estimate_and_disk_space(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage)

    unknown = analyze(pagila, storage, manifest)
    assert unknown.estimate == Estimate(None, None, NO_PAST_RESTORE)
    assert unknown.disk.fits is None
    assert unknown.disk.safety_backup_bytes == unknown.target.size
    assert any("not visible over SQL" in note for note in unknown.disk.notes)

    roomy = analyze(pagila, storage, manifest, past_restore_rate=1000.0,
                    backup_dir_free_bytes=10**15)
    assert roomy.estimate.seconds == round(manifest.size / 1000, 1)
    assert roomy.estimate.bytes_per_second == 1000.0
    assert roomy.disk.fits is True
    assert not any("safety backup" in warning for warning in roomy.warnings)

    tight = analyze(pagila, storage, manifest, backup_dir_free_bytes=1024)
    assert tight.disk.fits is False and tight.can_restore  # a warning, not an error
    (warning,) = [w for w in tight.warnings if "safety backup" in w]
    assert "1.0 KiB of free space" in warning


def fake_pg_restore(tmp_path: Path, extra_list_line: str) -> str:
    """The real pg_restore, with one more line at the end of ``--list``'s output."""
    script = tmp_path / "pg_restore"
    script.write_text(
        "#!/bin/bash\n"
        f'{shlex.quote(require_tool("pg_restore"))} "$@" || exit $?\n'
        f'if [[ " $* " == *" --list "* ]]; then echo {shlex.quote(extra_list_line)}; fi\n'
    )
    script.chmod(0o755)
    return str(script)


def test_what_makes_a_restore_impossible_is_an_error(
    pagila: str, storage: LocalStorage, tmp_path: Path
) -> None:
    manifest = backup(pagila, storage)

    def errors(manifest: Manifest = manifest, **kwargs: Any) -> list[str]:
        return analyze(pagila, storage, manifest, **kwargs).errors

    assert errors() == []
    (older,) = errors(manifest.model_copy(update={"server_version": "99.1"}))
    assert "an older major version than the backup's 99.1" in older
    newer = analyze(pagila, storage, manifest.model_copy(update={"server_version": "14.9"}))
    assert newer.can_restore and "newer major version" in str(newer.compatibility.server_version)

    extension = fake_pg_restore(tmp_path, "9999; 3079 99999 EXTENSION - no_such_extension ")
    (missing,) = errors(pg_restore=extension)
    assert missing.startswith("Extension no_such_extension is used by the backup but is not")

    unreadable = analyze(pagila, storage, manifest, pg_restore="/nonexistent/bin/pg_restore")
    (error,) = unreadable.errors
    assert "table of contents cannot be read: pg_restore not found" in error
    assert unreadable.backup.toc_entries is None
    assert unreadable.compatibility.roles_referenced is None

    with storage.path(manifest.artifact).open("ab") as artifact:
        artifact.write(b"appended")
    (altered,) = errors()
    assert altered.endswith("it is truncated or was altered.")


def test_schema_only_backup_restores_empty_tables(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage, kind="schema-only")
    report = analyze(pagila, storage, manifest)
    assert report.changes.replaced and {c.rows_after for c in report.changes.replaced} == {0}
    assert "This is a schema-only backup: every table will be empty after the restore." in (
        report.warnings
    )


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "rehearsal"}, "unknown restore mode"),
    ({"mode": "overwrite", "new_database": "x"}, "goes with mode='new-database'"),
    ({"mode": "new-database"}, "needs new_database"),
    ({"mode": "overwrite", "past_restore_rate": 0.0}, "must be positive"),
])
def test_bad_arguments(storage: LocalStorage, kwargs: dict[str, Any], message: str) -> None:
    target = ConnectionInfo.from_url("postgresql://nobody@127.0.0.1:1/nothing")
    manifest = Manifest.model_construct(size=1)  # refused before anything is read
    with pytest.raises(ValueError, match=message):
        analyze_restore(target, storage, manifest, **kwargs)
