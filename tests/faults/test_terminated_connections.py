"""pg_terminate_backend of each of a job's connections, mid-job.

A backup holds three sessions on the protected server: its advisory-lock session (in the
maintenance database, ``pgbackup backup of <db>``), the REPEATABLE READ transaction that
exported the snapshot and counted the rows (idle in transaction while pg_dump runs), and
pg_dump's own. A restore holds its lock session (``pgbackup restore of <target>``) and
pg_restore's. Each is terminated while the job is stalled mid-stream; then the stream is
released and the job runs to its end, whatever that is. It may fail (the snapshot or the
tool lost its connection) or finish, but the catalog, BACKUP_DIR and the server must agree.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.models import Backup, Restore
from tests.faults.helpers import Fault, backends, single_line, terminate_backend
from tests.faults.invariants import assert_invariants


def lock_session(fault: Fault, purpose: str) -> dict:
    """The advisory-lock session, named after what it protects (a restore into a new
    database locks that database's name)."""
    [session] = backends(fault.pg_server, "application_name LIKE %s",
                         (f"pgbackup {purpose} of %",))
    return session


def snapshot_session(fault: Fault) -> dict:
    """The transaction that exported pg_dump's snapshot: on the protected database, idle in
    a transaction that holds a snapshot (backend_xmin), not pg_dump's own."""
    [session] = backends(
        fault.pg_server, "datname = %s AND application_name <> 'pg_dump' "
        "AND state = 'idle in transaction' AND backend_xmin IS NOT NULL", (fault.database,))
    return session


BACKUP_SESSIONS: dict[str, Callable[[Fault, dict], dict]] = {
    "lock": lambda fault, _tool: lock_session(fault, "backup"),
    "snapshot": lambda fault, _tool: snapshot_session(fault),
    "pg_dump": lambda _fault, tool: tool,
}


@pytest.mark.parametrize("session", list(BACKUP_SESSIONS))
def test_backup_connection_terminated(fault: Fault, session: str) -> None:
    fault.gate.arm("pg_dump")
    backup_id = fault.post_backup()
    worker = fault.start_worker()
    tool = fault.wait_stalled("pg_dump", fault.database)
    victim = BACKUP_SESSIONS[session](fault, tool)
    terminate_backend(fault.pg_server, victim["pid"])
    fault.gate.release()

    row = fault.wait_row(Backup, backup_id, ("completed", "failed"))
    if session == "pg_dump":  # pg_dump cannot finish without its connection
        fault.expect(row.status == "failed" and "pg_dump" in (row.error or ""),
                     f"the backup whose pg_dump lost its connection is {row.status} "
                     f"({single_line(row.error)})")
    if session == "snapshot":  # the counts and the dump no longer share a live snapshot
        fault.expect(row.status == "failed" and row.error,
                     f"the backup whose snapshot transaction was terminated is {row.status} "
                     f"({single_line(row.error)})")
    fault.stop_worker(worker)
    fault.settle()
    assert_invariants(fault)


@pytest.mark.parametrize("session", ["lock", "pg_restore"])
def test_restore_connection_terminated(fault: Fault, session: str) -> None:
    restore_id, _target = fault.stalling_new_database_restore()
    worker = fault.start_worker()
    tool = fault.wait_stalled("pg_restore", "%")
    victim = tool if session == "pg_restore" else lock_session(fault, "restore")
    terminate_backend(fault.pg_server, victim["pid"])
    fault.gate.release()

    row = fault.wait_row(Restore, restore_id, ("completed", "failed"))
    if session == "pg_restore":
        fault.expect(row.status == "failed" and "pg_restore" in (row.error or ""),
                     f"the restore whose pg_restore lost its connection is {row.status} "
                     f"({single_line(row.error)})")
    fault.stop_worker(worker)
    fault.settle()
    assert_invariants(fault)
