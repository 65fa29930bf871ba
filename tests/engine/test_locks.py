"""Advisory locks between backups and restores, on a real PostgreSQL 15."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import psycopg
import pytest

from pgbackup import ConnectionInfo
from pgbackup.locks import LockBusy, backup_lock, lock_key, restore_lock
from tools.localservices import PostgresServer, free_port

ROOT = Path(__file__).resolve().parents[2]
Lock = Callable[[ConnectionInfo, str], AbstractContextManager[None]]


@pytest.fixture
def server(pg_server: PostgresServer) -> ConnectionInfo:
    """Any database of the server will do: the locks are always taken in ``postgres``."""
    return ConnectionInfo.from_url(pg_server.url("template1"))


def assert_busy(lock: AbstractContextManager[None], message: str) -> None:
    with pytest.raises(LockBusy, match=message), lock:
        pass


def test_keys_are_stable_signed_64_bit_integers() -> None:
    assert lock_key("pgbackup:db:pagila") == -2893065080162073768
    assert lock_key("pgbackup:restore") == 7221106470842622822


def test_one_restore_at_a_time_on_the_server(server: ConnectionInfo) -> None:
    with restore_lock(server, "shop"):
        assert_busy(restore_lock(server, "other"), "another restore is running")
    with restore_lock(server, "other"):  # released when the block ended
        pass


def test_backups_of_one_database_share_it(server: ConnectionInfo) -> None:
    with backup_lock(server, "shop"), backup_lock(server, "shop"), backup_lock(server, "other"):
        pass


@pytest.mark.parametrize(("held", "wanted", "message"), [
    (backup_lock, restore_lock, "a backup of shop is running"),
    (restore_lock, backup_lock, "a restore of shop is running"),
])
def test_backup_and_restore_of_one_database_exclude_each_other(
    server: ConnectionInfo, held: Lock, wanted: Lock, message: str
) -> None:
    with held(server, "shop"):
        assert_busy(wanted(server, "shop"), message)
        with backup_lock(server, "other"):  # other databases are not affected
            pass
    with wanted(server, "shop"):
        pass


def test_a_refused_restore_does_not_keep_the_server_restore_lock(
    server: ConnectionInfo,
) -> None:
    with backup_lock(server, "shop"):
        assert_busy(restore_lock(server, "shop"), "a backup of shop")
        with restore_lock(server, "other"):
            pass


HOLDER = """
import sys, time
from pgbackup import ConnectionInfo
from pgbackup.locks import restore_lock
with restore_lock(ConnectionInfo.from_url(sys.argv[1]), "shop"):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_locks_of_a_killed_worker_are_released(server: ConnectionInfo) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, server.conninfo], cwd=ROOT, stdout=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert_busy(backup_lock(server, "shop"), "a restore of shop")
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    deadline = time.monotonic() + 10  # the server notices the dropped connection
    while True:
        try:
            with backup_lock(server, "shop"), restore_lock(server, "other"):
                return
        except LockBusy:
            assert time.monotonic() < deadline, "the dead worker's locks were not released"
            time.sleep(0.05)


def test_lock_sessions_live_in_the_maintenance_database(
    server: ConnectionInfo, pg_server: PostgresServer,
) -> None:
    with backup_lock(server, "shop"), pg_server.connect() as conn:
        row = conn.execute(
            "SELECT a.datname, a.application_name FROM pg_locks l "
            "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory'"
        ).fetchone()
    assert row == ("postgres", "pgbackup backup of shop")


def test_unreachable_server_is_an_error_not_a_busy_lock() -> None:
    nowhere = ConnectionInfo.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(psycopg.OperationalError), backup_lock(nowhere, "shop"):
        pass
