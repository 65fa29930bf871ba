"""check_integrity and compare_tables against real backups of Pagila."""

from __future__ import annotations

import hashlib
import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pgbackup import (
    ConnectionInfo,
    LocalStorage,
    Manifest,
    TableInfo,
    manifest_name,
    new_backup_id,
    run_dump,
    write_manifest,
)
from pgbackup.recovery import describe_database
from pgbackup.verify import Check, VerifyResult, check_integrity, compare_tables
from tests.engine.helpers import (
    copy_backup,
    require_tool,
    restore_with_stock_tools,
    unique_backup_id,
)
from tools.localservices import PostgresServer

ALL_CHECKS = ["manifest", "artifact-exists", "size", "sha256", "decompress", "toc", "globals"]
SEED = 20240115
ZSTD_HEADER_BYTES = 32  # past these, any changed byte breaks the zstd frame


@dataclass(frozen=True)
class Backups:
    storage: LocalStorage
    compressed: Manifest
    raw: Manifest
    schema_only: Manifest
    unchecked: Manifest  # taken with checksums off


@pytest.fixture(scope="module")
def backups(
    pg_server: PostgresServer, pagila_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backups]:
    """Backups of a private Pagila copy, shared by the module's tests (which copy them
    before damaging anything)."""
    pg_server.drop_database("verify_source")
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE verify_source TEMPLATE "{pagila_template}"')
    conn_info = ConnectionInfo.from_url(pg_server.url("verify_source"))
    storage = LocalStorage(tmp_path_factory.mktemp("verify") / "backups")

    def backup(kind: str = "full", **kwargs: bool) -> Manifest:
        return run_dump(conn_info, storage, unique_backup_id(storage), kind, **kwargs)

    try:
        yield Backups(storage, backup(), backup(compress=False), backup("schema-only"),
                      backup(checksums=False))
    finally:
        pg_server.drop_database("verify_source")


def flip_byte(path: Path, offset: int, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= rng.randrange(1, 256)
    path.write_bytes(data)


def failing(result: VerifyResult) -> list[str]:
    return [check.name for check in result.checks if not check.ok]


def check(result: VerifyResult, name: str) -> Check:
    return next(check for check in result.checks if check.name == name)


@pytest.mark.parametrize("which", ["compressed", "raw", "schema_only"])
def test_good_backups_are_valid(
    backups: Backups, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHOST", "/nonexistent")  # pg_restore --list must not connect
    manifest: Manifest = getattr(backups, which)

    result = check_integrity(backups.storage, manifest.backup_id)

    assert result.is_valid, result.checks
    assert [c.name for c in result.checks] == ALL_CHECKS
    assert (result.level, result.warnings) == ("integrity", [])
    assert check(result, "sha256").detail == manifest.sha256
    assert check(result, "size").detail == f"{manifest.size} bytes"
    entries = int(check(result, "toc").detail.split()[0])
    assert entries > (100 if which == "schema_only" else 150)
    decompress = check(result, "decompress").detail
    if which == "raw":
        assert decompress == "stored uncompressed"
    else:
        assert decompress.endswith("bytes, zstd frame checksum verified")


@pytest.mark.parametrize("kind", ["full", "schema-only"])
def test_a_backup_of_an_empty_database_is_valid(
    kind: str, scratch_db: Callable[[], str], storage: LocalStorage
) -> None:
    """pg_dump writes an archive without TOC entries for a database without objects."""
    manifest = run_dump(ConnectionInfo.from_url(scratch_db()), storage,
                        unique_backup_id(storage), kind)

    result = check_integrity(storage, manifest.backup_id)

    assert manifest.tables == []
    assert result.is_valid, result.checks
    assert check(result, "toc").detail == "0 TOC entries: the database had no objects"


def test_result_is_data(backups: Backups) -> None:
    """The engine returns data; the app shapes it as JSON (tests/test_serializers.py)."""
    result = check_integrity(backups.storage, backups.compressed.backup_id)
    assert result.is_valid is True and result.level == "integrity"
    assert result.checks[0] == Check("manifest", True, "readable, self-checksum matches")
    assert result.checked_at.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - result.checked_at).total_seconds()) < 60


def test_missing_table_checksums_are_a_warning(backups: Backups) -> None:
    result = check_integrity(backups.storage, backups.unchecked.backup_id)
    assert result.is_valid
    assert result.warnings == [
        "no table checksums were recorded: a test restore can compare row counts only"
    ]


@pytest.mark.parametrize(("which", "count"), [("compressed", 24), ("raw", 12)])
def test_a_flipped_byte_anywhere_in_the_artifact_is_detected(
    backups: Backups, tmp_path: Path, which: str, count: int
) -> None:
    manifest: Manifest = getattr(backups, which)
    rng = random.Random(SEED)
    offsets = [0, manifest.size - 1, *rng.sample(range(1, manifest.size - 1), count - 2)]
    for offset in offsets:
        storage = copy_backup(backups.storage, manifest, tmp_path / f"flip-{offset}")
        flip_byte(storage.path(manifest.artifact), offset, rng)

        result = check_integrity(storage, manifest.backup_id)

        assert not result.is_valid, offset
        assert "sha256" in failing(result), offset
        assert set(failing(result)) <= {"sha256", "decompress", "toc"}, offset
        if which == "compressed" and offset >= ZSTD_HEADER_BYTES:
            assert "decompress" in failing(result), offset


def test_a_flipped_byte_anywhere_in_the_manifest_is_detected(
    backups: Backups, tmp_path: Path
) -> None:
    manifest = backups.compressed
    size = backups.storage.size(manifest_name(manifest.backup_id))
    rng = random.Random(SEED)
    for offset in [0, size - 1, *rng.sample(range(1, size - 1), 22)]:
        storage = copy_backup(backups.storage, manifest, tmp_path / f"flip-{offset}")
        flip_byte(storage.path(manifest_name(manifest.backup_id)), offset, rng)

        result = check_integrity(storage, manifest.backup_id)

        assert not result.is_valid, offset
        assert [(c.name, c.ok) for c in result.checks] == [("manifest", False)], offset
        assert result.checks[0].detail.startswith(f"manifest {manifest.backup_id}"), offset


@pytest.mark.parametrize("which", ["compressed", "raw"])
def test_truncated_artifact(backups: Backups, tmp_path: Path, which: str) -> None:
    manifest: Manifest = getattr(backups, which)
    storage = copy_backup(backups.storage, manifest, tmp_path)
    with storage.path(manifest.artifact).open("r+b") as handle:
        handle.truncate(manifest.size // 2)

    result = check_integrity(storage, manifest.backup_id)

    assert not result.is_valid
    assert check(result, "size").detail == (
        f"{manifest.size // 2} bytes on disk, {manifest.size} in the manifest"
    )
    expected = {"size", "sha256", "decompress"} if which == "compressed" else {"size", "sha256"}
    assert expected <= set(failing(result))
    if which == "compressed":
        assert "truncated" in check(result, "decompress").detail


def test_a_few_bytes_short_of_the_frame_end(backups: Backups, tmp_path: Path) -> None:
    """Cut inside the frame's final checksum: everything decompresses, yet the frame is
    incomplete."""
    manifest = backups.compressed
    storage = copy_backup(backups.storage, manifest, tmp_path)
    with storage.path(manifest.artifact).open("r+b") as handle:
        handle.truncate(manifest.size - 2)
    result = check_integrity(storage, manifest.backup_id)
    assert "truncated" in check(result, "decompress").detail


def test_bytes_after_the_zstd_frame(backups: Backups, tmp_path: Path) -> None:
    manifest = backups.compressed
    storage = copy_backup(backups.storage, manifest, tmp_path)
    with storage.path(manifest.artifact).open("ab") as handle:
        handle.write(b"\0" * 5)
    result = check_integrity(storage, manifest.backup_id)
    assert failing(result) == ["size", "sha256", "decompress"]
    assert check(result, "decompress").detail == "5 bytes after the zstd frame"


def test_missing_artifact(backups: Backups, tmp_path: Path) -> None:
    manifest = backups.compressed
    storage = copy_backup(backups.storage, manifest, tmp_path)
    storage.delete(manifest.artifact)
    result = check_integrity(storage, manifest.backup_id)
    assert not result.is_valid
    assert [(c.name, c.ok) for c in result.checks] == [
        ("manifest", True), ("artifact-exists", False), ("globals", True)
    ]
    assert result.checks[1].detail == f"{manifest.artifact} is missing"


@pytest.mark.parametrize("damage", ["missing", "flipped"])
def test_the_saved_roles_and_settings_are_checked(
        backups: Backups, tmp_path: Path, damage: str) -> None:
    manifest = backups.compressed
    assert manifest.globals is not None
    storage = copy_backup(backups.storage, manifest, tmp_path)
    if damage == "missing":
        storage.delete(manifest.globals.file)
    else:
        flip_byte(storage.path(manifest.globals.file), 40, random.Random(SEED))
    result = check_integrity(storage, manifest.backup_id)
    assert failing(result) == ["globals"]
    detail = check(result, "globals").detail
    if damage == "missing":
        assert detail == f"{manifest.globals.file} is missing"
    else:
        assert detail.startswith(f"{manifest.globals.file}: ") and "the manifest says" in detail


def test_missing_manifest(backups: Backups, tmp_path: Path) -> None:
    manifest = backups.compressed
    storage = copy_backup(backups.storage, manifest, tmp_path)
    storage.delete(manifest_name(manifest.backup_id))
    result = check_integrity(storage, manifest.backup_id)
    assert result.checks == [Check("manifest", False, "the manifest file is missing")]
    assert not result.is_valid and result.warnings == []


def test_manifest_of_another_backup(backups: Backups, tmp_path: Path) -> None:
    manifest = backups.compressed
    storage = copy_backup(backups.storage, manifest, tmp_path)
    other_id = unique_backup_id(backups.storage)
    storage.path(manifest_name(manifest.backup_id)).rename(storage.path(manifest_name(other_id)))
    result = check_integrity(storage, other_id)
    assert result.checks == [Check(
        "manifest", False, f"the manifest of {other_id} describes {manifest.backup_id}"
    )]


def test_missing_pg_restore(backups: Backups) -> None:
    result = check_integrity(backups.storage, backups.compressed.backup_id,
                             pg_restore="/nonexistent/pg_restore")
    assert failing(result) == ["toc"]
    assert check(result, "toc").detail.startswith("cannot run /nonexistent/pg_restore")


def test_archive_that_pg_restore_cannot_read(backups: Backups, tmp_path: Path) -> None:
    """A stream that decompresses fine but is no pg_dump archive (consistent manifest)."""
    manifest = backups.raw
    storage = copy_backup(backups.storage, manifest, tmp_path)
    path = storage.path(manifest.artifact)
    data = b"not an archive\n" * 1000
    path.write_bytes(data)
    storage.delete(manifest_name(manifest.backup_id))
    write_manifest(storage, manifest.model_copy(
        update={"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    ))

    result = check_integrity(storage, manifest.backup_id)

    assert failing(result) == ["toc"]
    assert check(result, "toc").detail.startswith("pg_restore --list failed (exit status 1)")


def test_toc_listing_larger_than_a_pipe_buffer(
    scratch_db: Callable[[], str], storage: LocalStorage
) -> None:
    """pg_restore's output is drained while the archive is written to it: no deadlock."""
    url = scratch_db()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN FOR i IN 1..1500 LOOP "
                     "EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i); "
                     "END LOOP; END $$")
    manifest = run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(), "full")
    listing = subprocess.run(
        f"zstd -dc {storage.path(manifest.artifact)} | {require_tool('pg_restore')} --list",
        shell=True, capture_output=True, check=True,
    ).stdout
    assert len(listing) > 65536
    entries = [line for line in listing.splitlines() if line and not line.startswith(b";")]

    result = check_integrity(storage, manifest.backup_id)

    assert result.is_valid
    assert check(result, "toc").detail == f"{len(entries)} TOC entries"


# compare_tables -------------------------------------------------------------------------

def restored_copy(backups: Backups, manifest: Manifest, scratch_db: Callable[[], str]) -> str:
    target = scratch_db()
    restore_with_stock_tools(backups.storage.path(manifest.artifact), target)
    return target


def stats_of(url: str, expected: list[TableInfo]) -> list[TableInfo]:
    """The tables now, their checksums computed as ``expected``'s were."""
    return describe_database(ConnectionInfo.from_url(url), expected)


def run_sql(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def test_restored_copy_matches_the_manifest(
    backups: Backups, scratch_db: Callable[[], str]
) -> None:
    manifest = backups.compressed
    target = restored_copy(backups, manifest, scratch_db)

    checks = compare_tables(manifest.tables, stats_of(target, manifest.tables))

    assert [c.name for c in checks] == [f"table {t.qualified_name}" for t in manifest.tables]
    assert all(c.ok for c in checks)
    assert Check("table public.actor", True, "public.actor: 200 rows, checksum matches") in checks


def test_changed_deleted_and_missing_rows_and_tables_are_found(
    backups: Backups, scratch_db: Callable[[], str]
) -> None:
    manifest = backups.compressed
    target = restored_copy(backups, manifest, scratch_db)
    run_sql(target, "UPDATE actor SET first_name = 'CHANGED' WHERE actor_id = 7")
    run_sql(target, "DELETE FROM payment_p2022_03 WHERE payment_id = "
                    "(SELECT min(payment_id) FROM payment_p2022_03)")
    run_sql(target, "DROP TABLE film_category CASCADE")  # and the views using it
    run_sql(target, "CREATE TABLE public.intruder (x int)")

    checks = compare_tables(manifest.tables, stats_of(target, manifest.tables))

    payments = next(t.rows for t in manifest.tables if t.name == "payment_p2022_03")
    assert [c for c in checks if not c.ok] == [
        Check("table public.actor", False,
              "public.actor: 200 rows as expected, but their content differs (checksum)"),
        Check("table public.film_category", False,
              "public.film_category: missing from the restored copy"),
        Check("table public.intruder", False,
              "public.intruder: not in the backup, found in the restored copy"),
        Check("table public.payment_p2022_03", False,
              f"public.payment_p2022_03: {payments} rows expected, {payments - 1} found"),
    ]


def test_schema_only_compares_presence_and_emptiness(
    backups: Backups, scratch_db: Callable[[], str]
) -> None:
    manifest = backups.schema_only
    target = restored_copy(backups, manifest, scratch_db)
    assert all(c.ok for c in compare_tables(manifest.tables, stats_of(target, manifest.tables)))

    run_sql(target, "INSERT INTO language (name) VALUES ('Klingon')")
    checks = compare_tables(manifest.tables, stats_of(target, manifest.tables))
    assert [c for c in checks if not c.ok] == [
        Check("table public.language", False, "public.language: 0 rows expected, 1 found")
    ]
    assert Check("table public.actor", True,
                 "public.actor: present and empty (schema-only)") in checks


def test_without_expected_checksums_only_counts_are_compared() -> None:
    expected = [TableInfo("public", "a", 2), TableInfo("s", "b", 0)]
    actual = [TableInfo("public", "a", 2, "123"), TableInfo("s", "b", 0, "0")]
    assert compare_tables(expected, actual) == [
        Check("table public.a", True, "public.a: 2 rows"),
        Check("table s.b", True, "s.b: 0 rows"),
    ]
