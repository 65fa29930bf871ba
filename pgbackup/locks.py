"""Keeping backups and restores out of each other's way, with PostgreSQL advisory locks.

The locks live on the protected server itself, so every worker on every host sees them:

- ``backup_lock(conn, db)`` takes a SHARED lock on the key of ``db``: any number of
  backups of one database may run together.
- ``restore_lock(conn, db)`` takes the EXCLUSIVE server-wide restore lock (one restore at a
  time) and the EXCLUSIVE lock on the key of ``db`` (no backup of a database while it is
  restored, no restore while it is backed up).

Both try once and raise :class:`LockBusy` saying who is in the way, instead of waiting.

Locks are session-level and held by a dedicated connection that stays open for the
with-block: leaving the block closes it and releases them, and if a worker dies its
connection drops and the server releases them, so a lock is never left behind. (Equally, a
connection lost mid-block loses its locks.) Advisory locks are scoped to the database the
session is connected to, so everybody locks in the maintenance database ``postgres``.
Keys are the first 8 bytes of the SHA-256 of a namespaced string, as a signed bigint:
the same in every process and Python version (unlike ``hash()``), and unlikely to collide
with another application's advisory locks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from pgbackup.connection import ConnectionInfo
from pgbackup.dbadmin import maintenance_connection

_TRY_SHARED = "SELECT pg_try_advisory_lock_shared(%s)"
_TRY_EXCLUSIVE = "SELECT pg_try_advisory_lock(%s)"
# A lock session idles for as long as the job runs: a server-wide idle_session_timeout
# (PostgreSQL 14+) must not end it. set_config is skipped where the setting is unknown.
_NO_IDLE_TIMEOUT = """
SELECT set_config('idle_session_timeout', '0', false)
WHERE current_setting('idle_session_timeout', true) IS NOT NULL
"""


class LockBusy(RuntimeError):
    """Another backup or restore holds a conflicting lock; the message says which."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a namespaced string."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


RESTORE_KEY = lock_key("pgbackup:restore")


def database_key(dbname: str) -> int:
    return lock_key(f"pgbackup:db:{dbname}")


@contextmanager
def backup_lock(conn: ConnectionInfo, dbname: str) -> Iterator[None]:
    """Hold a shared lock on ``dbname`` for the block; LockBusy while it is restored."""
    with _lock_session(conn, f"backup of {dbname}") as pg:
        _take(pg, _TRY_SHARED, database_key(dbname), f"a restore of {dbname} is running")
        yield


@contextmanager
def restore_lock(conn: ConnectionInfo, dbname: str) -> Iterator[None]:
    """Hold the server's restore lock and an exclusive lock on ``dbname`` for the block;
    LockBusy while another restore runs or ``dbname`` is being backed up."""
    with _lock_session(conn, f"restore of {dbname}") as pg:
        _take(pg, _TRY_EXCLUSIVE, RESTORE_KEY, "another restore is running")
        _take(pg, _TRY_EXCLUSIVE, database_key(dbname), f"a backup of {dbname} is running")
        yield


@contextmanager
def _lock_session(conn: ConnectionInfo, purpose: str) -> Iterator[psycopg.Connection]:
    """A fresh maintenance connection, named after ``purpose`` in pg_stat_activity."""
    with maintenance_connection(conn, application_name=f"pgbackup {purpose}") as pg:
        pg.execute(_NO_IDLE_TIMEOUT)
        yield pg


def _take(pg: psycopg.Connection, query: str, key: int, busy: str) -> None:
    row = pg.execute(query, [key]).fetchone()
    assert row is not None  # SELECT pg_try_advisory_lock*(...) returns one row
    if not row[0]:
        raise LockBusy(busy)
