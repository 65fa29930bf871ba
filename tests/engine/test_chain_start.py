"""A full backup that starts a chain: its snapshot comes from a new replication slot, which
then holds exactly the changes committed after the backup."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from pgbackup import ConnectionInfo, LocalStorage, run_dump
from pgbackup.errors import BackupError
from pgbackup.slots import list_slots, peek_changes
from tests.engine.helpers import unique_backup_id


@pytest.fixture
def slot(slot_prefix: str) -> str:
    return f"{slot_prefix}_a"


@pytest.fixture
def shop(scratch_db: Callable[[], str]) -> str:
    url = scratch_db()
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("CREATE TABLE rental (id int PRIMARY KEY, customer text)")
        pg.execute("INSERT INTO rental SELECT n, 'c' || n FROM generate_series(1, 100) n")
    return url


def test_a_full_backup_starts_a_chain_at_its_own_snapshot(
        shop: str, slot: str, storage: LocalStorage) -> None:
    conn = ConnectionInfo.from_url(shop)
    manifest = run_dump(conn, storage, unique_backup_id(storage), "full", capture_slot=slot)

    capture = manifest.capture
    assert capture is not None and capture.slot == slot
    assert capture.start_lsn == capture.end_lsn
    assert capture.covers_until <= capture.consistent_at
    assert manifest.snapshot != ""  # the slot's exported snapshot, which pg_dump used
    assert [(t.name, t.rows) for t in manifest.tables] == [("rental", 100)]
    with psycopg.connect(shop, autocommit=True) as pg:
        pg.execute("SET synchronous_commit = on")
        pg.execute("INSERT INTO rental VALUES (101, 'after')")
        flushed = pg.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0]
    changes = [data for _, _, data in peek_changes(conn, slot, flushed)]
    assert [c for c in changes if c.startswith("table ")] == [
        "table public.rental: INSERT: id[integer]:101 customer[text]:'after'"]


def test_a_failed_full_backup_leaves_no_slot(
        shop: str, slot: str, storage: LocalStorage, fake_pg_dump) -> None:
    conn = ConnectionInfo.from_url(shop)
    broken = fake_pg_dump('case "$*" in *--format=custom*) echo boom >&2; exit 1;; esac')
    with pytest.raises(BackupError):
        run_dump(conn, storage, unique_backup_id(storage), "full", capture_slot=slot,
                 pg_dump=broken)
    assert list_slots(conn, slot) == []
