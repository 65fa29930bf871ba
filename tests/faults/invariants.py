"""The one checker every fault test ends with.

After a fault, and after the system was given the chance to recover (a new worker
reconciles the catalog), these must hold:

1. Nothing is left queued or running.
2. No process the test started is left (worker, work horse, pg_dump, pg_restore, wrapper).
3. No session of the job is left on the server (pg_dump, pg_restore, lock sessions), no
   advisory lock, no replication slot, no prepared transaction.
4. No database is left behind other than those that existed before the test and the
   targets of completed restores into a new database, unless a failed row's error (or a
   completed restore's warning) names it, so that an operator can find it.
5. BACKUP_DIR holds only the artifacts and manifests of completed backups: no orphan
   artifact or manifest, no ``.partial``, nothing else.
6. Nothing is marked completed that is not: every completed backup that is not flagged
   ``corrupted`` has its artifact and manifest, passes the integrity check, and its catalog
   row (filename, size, sha256) agrees with its manifest; every completed restore into a
   new database left a database that matches the backup's manifest.
7. The protected database is untouched (same schema dump and per-table fingerprints as
   before the fault, tests/support/dbcompare.py), or, when an overwrite restore completed, it
   matches that backup's manifest, accepts connections, and the restore's safety backup is
   present, completed and verified valid.
8. The next backup runs and completes, and is verified valid.
"""

from __future__ import annotations

import re
import time

from pgbackup import (
    LocalStorage,
    check_integrity,
    compare_tables,
    describe_database,
    read_manifest,
)
from pgbackup.connection import ConnectionInfo
from services.models import Backup, Restore
from tests.faults.helpers import (
    POLL,
    Fault,
    backends,
    databases,
    describe_processes,
    protected_state,
    single_line,
    state_difference,
    tagged_processes,
)

_FILE_RE = re.compile(
    r"^(?P<id>backup-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)\.(?:dump\.zst|dump|manifest\.json|globals\.json\.zst|globals\.json)$")
_JOB_SESSIONS = ("application_name IN ('pg_dump', 'pg_restore') "
                 "OR application_name LIKE 'pgbackup %%'")
PROCESS_GRACE = 5.0
SESSION_GRACE = 5.0


def check_invariants(fault: Fault, next_backup: bool = True) -> list[str]:
    """Every violation, one sentence each; empty when the system is in order."""
    problems: list[str] = []
    backups, restores = fault.rows(Backup), fault.rows(Restore)

    for row in [*backups, *restores]:
        if row.status in ("queued", "running"):
            problems.append(f"{_name(row)} is still {row.status} after the fault settled")

    problems += _processes(fault)
    problems += _server(fault)
    problems += _databases(fault, backups, restores)
    problems += _files(fault, backups)
    problems += _completed_backups(fault, backups)
    problems += _completed_restores(fault, restores)
    problems += _protected(fault, backups, restores)
    if next_backup:
        problems += _next_backup(fault)
    return problems


def assert_invariants(fault: Fault, next_backup: bool = True) -> None:
    """The test's own expectations and the invariants, all reported at once."""
    problems = [*fault.expectations, *check_invariants(fault, next_backup)]
    assert not problems, "after the fault:\n  - " + "\n  - ".join(problems)


def _name(row: Backup | Restore) -> str:
    return f"{'restore' if isinstance(row, Restore) else 'backup'} {row.id}"


def _processes(fault: Fault) -> list[str]:
    deadline = time.monotonic() + PROCESS_GRACE
    while (left := tagged_processes(fault.tag)) and time.monotonic() < deadline:
        time.sleep(POLL)
    if left:
        fault.kill_leftovers()  # so the checks below see a quiet server
        return [f"processes started by the test are still running: {describe_processes(left)}"]
    return []


def _server(fault: Fault) -> list[str]:
    problems = []
    deadline = time.monotonic() + SESSION_GRACE
    while (sessions := backends(fault.pg_server, _JOB_SESSIONS)) \
            and time.monotonic() < deadline:
        time.sleep(POLL)
    if sessions:
        problems.append("sessions of the job are still on the server: " + "; ".join(
            f"{s['application_name']} on {s['datname']} ({s['state']})" for s in sessions))
    with fault.pg_server.connect() as conn:
        slots = conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall()
        locks = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
        prepared = conn.execute("SELECT gid FROM pg_prepared_xacts").fetchall()
    if slots:
        problems.append(f"replication slots left: {', '.join(s for (s,) in slots)}")
    if locks:
        problems.append(f"{locks} advisory lock(s) still held on the server")
    if prepared:
        problems.append(f"prepared transactions left: {', '.join(g for (g,) in prepared)}")
    return problems


def _databases(fault: Fault, backups: list[Backup], restores: list[Restore]) -> list[str]:
    allowed = set(fault.known_databases) | {
        r.target_database for r in restores if r.mode == "new-database"
        and r.status == "completed"}
    explanations = [row.error or "" for row in [*backups, *restores] if row.status == "failed"]
    explanations += [" ".join((r.result or {}).get("warnings") or []) for r in restores
                     if r.status == "completed"]
    problems = []
    for name in sorted(databases(fault.pg_server) - allowed):
        if not any(re.search(rf"(?<![\w$-]){re.escape(name)}(?![\w$-])", text)
                   for text in explanations):
            problems.append(f"database {name} was left on the server and no failed job's "
                            "error names it")
    return problems


def _files(fault: Fault, backups: list[Backup]) -> list[str]:
    status = {b.id: b.status for b in backups}
    problems = []
    if not fault.backup_dir.exists():
        return problems
    for entry in sorted(fault.backup_dir.iterdir()):
        name = entry.name
        if name == "RESTORE":  # the recovery kit, written beside the first backup
            continue
        if name.endswith(".partial"):
            problems.append(f"unfinished write {name} left in BACKUP_DIR")
        elif match := _FILE_RE.fullmatch(name):
            backup_id = match["id"]
            if status.get(backup_id) != "completed":
                problems.append(f"{name} is in BACKUP_DIR but backup {backup_id} is "
                                f"{status.get(backup_id, 'not in the catalog')}")
        else:
            problems.append(f"unexpected file {name} in BACKUP_DIR")
    return problems


def _completed_backups(fault: Fault, backups: list[Backup]) -> list[str]:
    storage = LocalStorage(fault.backup_dir)
    problems = []
    for backup in backups:
        if backup.status != "completed" or backup.verification == "corrupted":
            continue  # a corrupted backup is flagged as such: it claims nothing
        problems += integrity_problems(storage, backup)
    return problems


def integrity_problems(storage: LocalStorage, backup: Backup) -> list[str]:
    """Why a completed, not-flagged backup is not what its catalog row says, if it is not."""
    where = f"backup {backup.id} is completed ({backup.verification})"
    result = check_integrity(storage, backup.id)
    if not result.is_valid:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in result.checks if not c.ok)
        return [f"{where} but fails its integrity check: {single_line(failed)}"]
    manifest = read_manifest(storage, backup.id)
    catalog = (backup.filename, backup.size, backup.sha256)
    stored = (manifest.artifact, manifest.size, manifest.sha256)
    if catalog != stored:
        return [f"{where} but its catalog row (filename, size, sha256) {catalog} disagrees "
                f"with its manifest {stored}"]
    return []


def _completed_restores(fault: Fault, restores: list[Restore]) -> list[str]:
    storage = LocalStorage(fault.backup_dir)
    server = ConnectionInfo.from_url(fault.protected_url)
    present = databases(fault.pg_server)
    problems = []
    for restore in restores:
        if restore.status != "completed" or restore.mode != "new-database":
            continue
        name = restore.target_database
        if name not in present:
            problems.append(f"restore {restore.id} is completed but database {name} is missing")
            continue
        manifest = read_manifest(storage, restore.backup_id)
        checks = compare_tables(manifest.tables,
                                describe_database(server.for_database(name), manifest.tables))
        if not all(check.ok for check in checks):
            bad = "; ".join(check.detail for check in checks if not check.ok)
            problems.append(f"restore {restore.id} is completed but {name} does not match the "
                            f"manifest of {restore.backup_id}: {single_line(bad)[:300]}")
    return problems


def _protected(fault: Fault, backups: list[Backup], restores: list[Restore]) -> list[str]:
    with fault.pg_server.connect() as conn:
        row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s",
                           [fault.database]).fetchone()
    if row is None:
        return [f"the protected database {fault.database} no longer exists"]
    if not row[0]:
        return [f"the protected database {fault.database} refuses connections"]
    overwrites = sorted(
        (r for r in restores if r.mode == "overwrite" and r.status == "completed"
         and r.finished_at and r.finished_at >= fault.untouched_at),
        key=lambda r: r.finished_at)
    if not overwrites:
        now = protected_state(fault.protected_url)
        if now != fault.untouched:
            return [f"the protected database {fault.database} changed although no restore "
                    f"over it completed: {state_difference(fault.untouched, now)}"]
        return []
    restore = overwrites[-1]
    problems = []
    storage = LocalStorage(fault.backup_dir)
    server = ConnectionInfo.from_url(fault.protected_url)
    manifest = read_manifest(storage, restore.backup_id)
    checks = compare_tables(manifest.tables, describe_database(server, manifest.tables))
    if not all(check.ok for check in checks):
        bad = "; ".join(check.detail for check in checks if not check.ok)
        problems.append(f"restore {restore.id} over {fault.database} is completed but the "
                        f"database does not match {restore.backup_id}: {single_line(bad)[:300]}")
    by_id = {b.id: b for b in backups}
    safety = by_id.get(restore.safety_backup_id or "")
    if safety is None:
        problems.append(f"restore {restore.id} over {fault.database} is completed without a "
                        f"safety backup ({restore.safety_backup_id!r} is not in the catalog)")
    elif (safety.status, safety.origin, safety.verification) != ("completed", "safety", "valid"):
        problems.append(f"the safety backup {safety.id} of completed restore {restore.id} is "
                        f"{safety.status}, origin {safety.origin}, verification "
                        f"{safety.verification}: it must be completed and verified valid")
    return problems


def _next_backup(fault: Fault) -> list[str]:
    response = fault.api.post("/api/system/backup", json={"type": "full"})
    if response.status_code != 202:
        return [f"the next backup was refused: {response.status_code} {response.get_json()}"]
    backup_id = response.get_json()["backupId"]
    fault.run_worker()
    backup = fault.row(Backup, backup_id)
    if backup.status != "completed":
        return [f"the next backup {backup_id} is {backup.status}: {single_line(backup.error)}"]
    problems = integrity_problems(LocalStorage(fault.backup_dir), backup)
    if backup.verification != "valid":
        problems.append(f"the next backup {backup_id} completed but its automatic integrity "
                        f"check says {backup.verification}")
    return problems
