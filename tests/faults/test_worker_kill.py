"""kill -9 of a real `rq worker` in the middle of each kind of job.

Two ways to kill it:
- ``tree``: the worker and every descendant (work horse, pg_dump, pg_restore), as a crash
  of the machine or the OOM killer taking a whole cgroup would;
- ``group``: ``os.killpg`` of the worker's process group only, as a process supervisor
  stopping "the worker" does. RQ's work horse runs in a group of its own, and pg_dump and
  pg_restore in sessions of their own, so the job's processes must notice by themselves
  that their worker is gone and stop: nothing may keep running.

Each job is stalled mid-stream by a gated pg_dump or pg_restore wrapper, so the kill lands
at a known moment: mid-dump, mid-test-restore into the scratch database, mid-restore into
a new database, and, for a restore over the protected database, during its safety backup
and during the restore into ``<db>_restore_<hex>``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from services.models import Backup, Restore
from tests.faults.helpers import Fault, change_the_database, single_line
from tests.faults.invariants import assert_invariants
from tests.support.workers import kill_tree

# How long the job's own processes may take to stop once their worker's group is killed.
ORPHAN_GRACE = 10.0


@dataclass
class Job:
    tool: str  # the gated tool that stalls
    # where its session is while stalled: pg_dump reads the protected database; pg_restore
    # writes into a database of the job's own, whatever the product names it
    database_like: str
    outcome: Callable[[], None]  # the job-specific expectations, once settled


def backup(fault: Fault) -> Job:
    fault.gate.arm("pg_dump")
    backup_id = fault.post_backup()

    def outcome() -> None:
        row = fault.row(Backup, backup_id)
        fault.expect(row.status == "failed" and row.error,
                     f"the killed backup is {row.status} ({single_line(row.error)})")

    return Job("pg_dump", fault.database, outcome)


def restore_level_verification(fault: Fault) -> Job:
    backup_id = fault.completed_backup()
    fault.gate.arm("pg_restore")
    response = fault.api.post("/api/system/backup/verify",
                              json={"backupId": backup_id, "level": "restore"})
    assert response.status_code == 202, response.get_json()

    def outcome() -> None:
        row = fault.row(Backup, backup_id)
        result = row.verification_result or {}
        fault.expect(row.verification != "corrupted",
                     "an interrupted test restore marked a sound backup corrupted")
        fault.expect(result.get("level") != "restore" or not result.get("isValid"),
                     "a test restore that never finished is recorded as a valid one")

    return Job("pg_restore", "%", outcome)


def restore_into_new_database(fault: Fault) -> Job:
    restore_id, target = fault.stalling_new_database_restore()

    def outcome() -> None:
        row = fault.row(Restore, restore_id)
        fault.expect(row.status == "failed",
                     f"the killed restore into {target} is {row.status}")

    return Job("pg_restore", "%", outcome)


def _overwrite(fault: Fault, tool: str, database_like: str) -> Job:
    backup_id = fault.completed_backup()
    change_the_database(fault.protected_url)
    fault.remember_protected()
    fault.gate.arm(tool)
    response = fault.restore(backupId=backup_id, confirmDataLoss=True)
    assert response.status_code == 202, response.get_json()
    restore_id = response.get_json()["restoreId"]

    def outcome() -> None:
        row = fault.row(Restore, restore_id)
        fault.expect(row.status == "failed", f"the killed overwrite restore is {row.status}")
        safety = fault.row(Backup, row.safety_backup_id) if row.safety_backup_id else None
        if tool == "pg_restore":  # killed after the safety backup: it must be there
            fault.expect(safety is not None and safety.status == "completed",
                         "the safety backup taken before the kill is "
                         f"{safety.status if safety else 'missing'}")

    return Job(tool, database_like, outcome)


def overwrite_during_safety_backup(fault: Fault) -> Job:
    return _overwrite(fault, "pg_dump", fault.database)


def overwrite_during_restore(fault: Fault) -> Job:
    return _overwrite(fault, "pg_restore", "%")


JOBS = {
    "backup": backup,
    "verify-restore-level": restore_level_verification,
    "restore-new-database": restore_into_new_database,
    "overwrite-safety-backup": overwrite_during_safety_backup,
    "overwrite-restore": overwrite_during_restore,
}


@pytest.mark.parametrize("kill", ["tree", "group"])
@pytest.mark.parametrize("job", list(JOBS))
def test_worker_killed_mid_job(fault: Fault, job: str, kill: str) -> None:
    started = JOBS[job](fault)
    worker = fault.start_worker()
    fault.wait_stalled(started.tool, started.database_like)

    if kill == "tree":
        kill_tree(worker.pid)
        worker.wait()
    else:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        fault.expect_job_processes_end(ORPHAN_GRACE, "after the worker's process group was "
                                       "killed")
    fault.settle()
    started.outcome()
    assert_invariants(fault)
