"""Helpers for the engine tests: stock-tool restores and required binaries."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import zstandard
from psycopg import sql

from pgbackup import ConnectionInfo, LocalStorage, Manifest, manifest_name, new_backup_id
from pgbackup.slots import drop_slot, list_slots
from tests.support.dbcompare import table_fingerprints
from tools.localservices import PostgresServer


def require_tool(name: str) -> str:
    """Absolute path of a command-line tool; a missing tool fails the test, never skips it."""
    path = shutil.which(name)
    if not path:
        pytest.fail(
            f"{name} not found on PATH: install it (apt-get install -y age zstd "
            "postgresql-client)",
            pytrace=False,
        )
    return path


def restore_with_stock_tools(
    artifact: Path, target_url: str, identity_file: Path | None = None
) -> None:
    """Restore an artifact the way an operator would, with only age (``identity_file``, for
    a ``.age`` artifact), zstd and pg_restore.

    ``--exit-on-error`` plus ``pipefail`` make any error in any tool fail the restore:
    a pg_dump 15 archive of Pagila restores into a fresh database without a single error
    (pg_dump >= 15 does not emit CREATE SCHEMA public), so no error is tolerated.
    """
    pg_restore = require_tool("pg_restore")
    restore = f"{pg_restore} --no-owner --exit-on-error --dbname={shlex.quote(target_url)}"
    if artifact.name.endswith(".age"):
        assert identity_file is not None, "an encrypted artifact needs an identity file"
        age = f"{require_tool('age')} -d -i {shlex.quote(str(identity_file))}"
        unzstd = f" | {require_tool('zstd')} -d" if artifact.name.endswith(".zst.age") else ""
        command = f"{age} {shlex.quote(str(artifact))}{unzstd} | {restore}"
    elif artifact.name.endswith(".zst"):
        command = f"{require_tool('zstd')} -d -c {shlex.quote(str(artifact))} | {restore}"
    else:
        command = f"{restore} {shlex.quote(str(artifact))}"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"restore failed ({result.returncode}):\n{result.stderr}"


def row_counts_of_tables(url: str) -> dict[str, int]:
    """Actual row count of every table (materialized views left out), per dbcompare."""
    with psycopg.connect(url) as conn:
        matviews = {row[0] for row in conn.execute(
            "SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews")}
    return {
        name: count for name, (count, _) in table_fingerprints(url).items()
        if name not in matviews
    }


def decompressed(artifact: Path) -> bytes:
    with artifact.open("rb") as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle).read()


def copy_public_schema_owner(source_url: str, target_url: str) -> None:
    """Give the target's ``public`` schema the source's owner.

    Pagila hands ``public`` to postgres; PostgreSQL 15 creates it owned by
    pg_database_owner. pg_restore never re-creates ``public`` (initdb did) and
    ``--no-owner`` skips its ALTER ... OWNER, so after a portable restore that owner is the
    one schema difference, and the only thing this changes.
    """
    query = "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'"
    with psycopg.connect(source_url) as source:
        owner = source.execute(query).fetchone()[0]
    with psycopg.connect(target_url, autocommit=True) as target:
        target.execute(
            sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner))
        )


def unique_backup_id(storage: LocalStorage) -> str:
    """A new id (ids have millisecond resolution: wait for the next one if taken)."""
    while storage.exists(manifest_name(backup_id := new_backup_id())):
        pass
    return backup_id


def copy_backup(source: LocalStorage, manifest: Manifest, root: Path) -> LocalStorage:
    """A new storage directory holding a copy of the backup's files (artifact, manifest and
    the saved roles and settings)."""
    target = LocalStorage(root)
    sidecar = [manifest.globals.file] if manifest.globals else []
    for name in (manifest.artifact, manifest_name(manifest.backup_id), *sidecar):
        shutil.copyfile(source.path(name), target.path(name))
    return target


def drop_slots(server: PostgresServer, prefix: str) -> None:
    """Drop every replication slot named ``prefix``... on the server: a leftover keeps WAL
    and keeps its database from being dropped."""
    for info in list_slots(ConnectionInfo.from_url(server.url()), prefix):
        drop_slot(ConnectionInfo.from_url(server.url(info.database)), info.name)
