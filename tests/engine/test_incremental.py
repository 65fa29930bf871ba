"""Incremental backups: the changes since the chain's last backup, as a psql script that
stock zstd and psql replay onto the full's restore, giving the source exactly."""

from __future__ import annotations

import io
import shlex
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import psycopg
import pytest
import zstandard

from pgbackup import ConnectionInfo, LocalStorage, check_integrity, read_manifest, run_dump
from pgbackup.errors import BackupError
from pgbackup.incremental import ChainBroken, run_incremental_to
from pgbackup.slots import drop_slot, list_slots
from pgbackup.targets import Target
from tests.engine.helpers import require_tool, restore_with_stock_tools, unique_backup_id
from tests.support.dbcompare import schema_dump, table_fingerprints

SCHEMA = """
CREATE TABLE rental (id int PRIMARY KEY, customer text, returned boolean DEFAULT false);
CREATE TABLE visits (at timestamptz, note text);  -- no key: copied whole when it changes
CREATE SEQUENCE tickets;
INSERT INTO rental SELECT n, 'c' || n FROM generate_series(1, 200) n;
INSERT INTO visits VALUES ('2024-01-01', 'first');
"""


@pytest.fixture
def shop(scratch_db: Callable[[], str]) -> str:
    url = scratch_db()
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(SCHEMA)
    return url


class FullDisk(LocalStorage):
    """A directory whose disk is full: every write of an artifact fails."""

    @contextmanager
    def atomic_writer(self, name: str) -> Iterator[BinaryIO]:
        with super().atomic_writer(name) as handle:
            handle.write = self._refuse  # type: ignore[method-assign]
            yield handle

    @staticmethod
    def _refuse(data: bytes) -> int:
        raise OSError(28, "No space left on device (disk full)")


def write(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET synchronous_commit = on")  # decoding reads flushed WAL only
        for statement in statements:
            pg.execute(statement)


def incremental(conn: ConnectionInfo, storage: LocalStorage, parent, slot: str, **kwargs):
    [copy] = run_incremental_to(conn, [Target("local", storage)], unique_backup_id(storage),
                                parent, slot, **kwargs)
    assert copy.manifest is not None
    return copy.manifest


def replay(storage: LocalStorage, artifact: str, url: str) -> None:
    """The operator's way: zstd and psql, nothing else."""
    command = (f"{require_tool('zstd')} -dc {shlex.quote(str(storage.path(artifact)))} | "
               f"{require_tool('psql')} -X -q -v ON_ERROR_STOP=1 -d {shlex.quote(url)}")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_full_and_incrementals_replayed_with_stock_tools_equal_the_source(
        shop: str, slot_prefix: str, storage: LocalStorage, scratch_db: Callable[[], str]) -> None:
    conn = ConnectionInfo.from_url(shop)
    full = run_dump(conn, storage, unique_backup_id(storage), "full",
                    capture_slot=f"{slot_prefix}_a")
    write(shop, "UPDATE rental SET returned = true WHERE id <= 50",
          "DELETE FROM rental WHERE id > 190", "INSERT INTO visits VALUES (now(), 'second')",
          "SELECT nextval('tickets') FROM generate_series(1, 5)")
    first = incremental(conn, storage, full, f"{slot_prefix}_b")
    write(shop, "INSERT INTO rental VALUES (500, 'late')", "DELETE FROM visits")
    second = incremental(conn, storage, first, f"{slot_prefix}_c")

    assert first.type == "incremental" and first.parent_id == full.backup_id
    assert first.artifact.endswith(".sql.zst") and first.dump_format == "sql"
    capture = first.capture
    assert capture is not None and full.capture is not None
    assert capture.start_lsn == full.capture.end_lsn and capture.slot == f"{slot_prefix}_b"
    assert capture.transactions == 3  # nextval alone writes no change
    assert capture.table_changes == {"public.rental": 60, "public.visits": 1}
    assert capture.tables_copied == ["public.visits"]
    assert capture.first_commit is not None and capture.last_commit is not None
    assert second.capture is not None and second.capture.start_lsn == capture.end_lsn
    rows = {info.qualified_name: info.rows for info in second.tables}
    assert rows == {"public.rental": 191, "public.visits": 0}
    assert read_manifest(storage, second.backup_id) == second

    restored = scratch_db()
    restore_with_stock_tools(storage.path(full.artifact), restored)
    for manifest in (first, second):
        replay(storage, manifest.artifact, restored)
    assert schema_dump(restored) == schema_dump(shop)
    assert table_fingerprints(restored) == table_fingerprints(shop)
    with psycopg.connect(restored) as pg:
        assert pg.execute("SELECT nextval('tickets')").fetchone() == (6,)  # at or beyond


def test_a_schema_change_breaks_the_chain(shop: str, slot_prefix: str,
                                         storage: LocalStorage) -> None:
    conn = ConnectionInfo.from_url(shop)
    full = run_dump(conn, storage, unique_backup_id(storage), "full",
                    capture_slot=f"{slot_prefix}_a")
    write(shop, "ALTER TABLE rental ADD COLUMN fee numeric")
    with pytest.raises(ChainBroken, match="schema changed since backup"):
        incremental(conn, storage, full, f"{slot_prefix}_b")
    # the new slot b is dropped with the failed incremental
    assert [info.name for info in list_slots(conn, slot_prefix)] == [f"{slot_prefix}_a"]
    assert sorted(path.name for path in storage.root.iterdir()) == sorted(
        [full.artifact, f"{full.backup_id}.manifest.json", full.globals.file])


def test_a_lost_slot_breaks_the_chain(shop: str, slot_prefix: str, storage: LocalStorage) -> None:
    conn = ConnectionInfo.from_url(shop)
    full = run_dump(conn, storage, unique_backup_id(storage), "full",
                    capture_slot=f"{slot_prefix}_a")
    drop_slot(conn, f"{slot_prefix}_a")
    with pytest.raises(ChainBroken, match=f"replication slot {slot_prefix}_a is gone"):
        incremental(conn, storage, full, f"{slot_prefix}_b")


def test_a_failed_incremental_keeps_the_chain_as_it_was(
        shop: str, slot_prefix: str, storage: LocalStorage, tmp_path: Path) -> None:
    conn = ConnectionInfo.from_url(shop)
    full = run_dump(conn, storage, unique_backup_id(storage), "full",
                    capture_slot=f"{slot_prefix}_a")
    write(shop, "UPDATE rental SET customer = 'x' WHERE id = 1")
    with pytest.raises(BackupError, match="disk full"):
        run_incremental_to(conn, [Target("nas", FullDisk(tmp_path / "nas"))],
                           unique_backup_id(storage), full, f"{slot_prefix}_b")
    assert [info.name for info in list_slots(conn, slot_prefix)] == [f"{slot_prefix}_a"]
    again = incremental(conn, storage, full, f"{slot_prefix}_c")  # nothing lost: A still has it
    assert again.capture is not None and again.capture.table_changes == {"public.rental": 1}


def test_an_incremental_is_checked_as_a_script(shop: str, slot_prefix: str,
                                                storage: LocalStorage) -> None:
    conn = ConnectionInfo.from_url(shop)
    full = run_dump(conn, storage, unique_backup_id(storage), "full",
                    capture_slot=f"{slot_prefix}_a")
    write(shop, "UPDATE rental SET customer = 'y' WHERE id < 10")
    manifest = incremental(conn, storage, full, f"{slot_prefix}_b")

    result = check_integrity(storage, manifest.backup_id)
    assert result.is_valid, result.checks
    assert [c.name for c in result.checks] == [
        "manifest", "artifact-exists", "size", "sha256", "decompress", "script"]

    path = storage.path(manifest.artifact)
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())) as reader:
        cut = reader.read()[:-10]
    path.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(cut))
    checks = {c.name: c for c in check_integrity(storage, manifest.backup_id).checks}
    assert not checks["sha256"].ok  # the stored bytes changed, and the script says why:
    assert checks["script"].detail == "the script is cut short: its end marker is missing"
