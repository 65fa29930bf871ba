"""A process killed (SIGKILL) while an incremental is being written, after it has read
changes and before it stored them: the next incremental from the same parent holds every
change exactly once, and the chain restores to the source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pgbackup import ConnectionInfo, LocalStorage, run_dump
from pgbackup.chain_restore import restore_chain
from pgbackup.incremental import run_incremental_to
from pgbackup.targets import Target
from tests.engine.helpers import drop_slots, unique_backup_id
from tests.support.dbcompare import table_fingerprints
from tests.support.workers import wait_for
from tools.localservices import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
# The incremental, in a process of its own, on a storage that stops after its first write
# (the changes are being read and written) until it is killed.
KILLED_WRITER = """
import sys, time
from pathlib import Path
from pgbackup import ConnectionInfo, LocalStorage, read_manifest
from pgbackup.incremental import run_incremental_to
from pgbackup.targets import Target

url, root, parent_id, backup_id, slot, reached = sys.argv[1:]

class Stalling(LocalStorage):
    def atomic_writer(self, name):
        manager = super().atomic_writer(name)
        handle = manager.__enter__()
        original = handle.write
        def write(data):
            Path(reached).touch()
            time.sleep(3600)  # killed here
            return original(data)
        handle.write = write
        class Wrapped:
            def __enter__(self): return handle
            def __exit__(self, *exc): return manager.__exit__(*exc)
        return Wrapped()

storage = Stalling(root)
run_incremental_to(ConnectionInfo.from_url(url), [Target("local", storage)], backup_id,
                   read_manifest(storage, parent_id), slot)
"""


@pytest.fixture
def shop(scratch_db: Callable[[], str], pg_server: PostgresServer,
         slot_prefix: str) -> Iterator[str]:
    url = scratch_db()
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("CREATE TABLE rental (id int PRIMARY KEY, customer text)")
        pg.execute("INSERT INTO rental SELECT n, 'c' || n FROM generate_series(1, 100) n")
    yield url
    drop_slots(pg_server, slot_prefix)  # before scratch_db drops the database


def test_a_writer_killed_mid_incremental_loses_and_doubles_nothing(
        shop: str, slot_prefix: str, storage: LocalStorage, tmp_path: Path,
        scratch_db: Callable[[], str]) -> None:
    conn = ConnectionInfo.from_url(shop)
    prefix = slot_prefix
    full = run_dump(conn, storage, unique_backup_id(storage), "full",
                    capture_slot=f"{prefix}_a")
    with psycopg.connect(shop, autocommit=True) as pg:
        pg.execute("SET synchronous_commit = on")
        pg.execute("UPDATE rental SET customer = 'changed' WHERE id <= 10")
        pg.execute("INSERT INTO rental VALUES (101, 'new')")
        pg.execute("DELETE FROM rental WHERE id = 100")

    reached = tmp_path / "reached"
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, shop, str(storage.root), full.backup_id,
         unique_backup_id(storage), f"{prefix}_b", str(reached)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_for(lambda: reached.exists() or killed.poll() is not None)
        assert killed.poll() is None, "the writer ended before it was killed"
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert not list(storage.root.glob("*.sql*")) or all(
        path.name.endswith(".partial") for path in storage.root.glob("*.sql*"))

    [copy] = run_incremental_to(conn, [Target("local", storage)], unique_backup_id(storage),
                                full, f"{prefix}_c")  # the chain's slot A still has it all
    assert copy.manifest is not None and copy.manifest.capture is not None
    assert copy.manifest.capture.table_changes == {"public.rental": 12}
    restored = scratch_db()
    restore_chain(ConnectionInfo.from_url(restored), [(storage, full),
                                                      (storage, copy.manifest)], None, None)
    assert table_fingerprints(restored) == table_fingerprints(shop)
