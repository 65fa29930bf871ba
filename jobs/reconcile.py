"""Bring the catalog back in line with what RQ can still finish.

A worker killed mid-backup leaves its catalog row "running" and a ``.partial`` file: the
row becomes failed and the files go. One killed mid-restore may leave the databases it
created (claimed beforehand, see :mod:`claims`): they are dropped, or named in the error.
One killed in the middle of an overwrite restore may have swapped the databases already
(or a new-database restore renamed its copy to the target): that restore took effect,
and is marked completed with a warning, not failed.
RQ notices an abandoned job only after its heartbeat expires; this check is quicker
and runs whenever a worker starts and on every worker maintenance pass.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import psycopg
from redis import Redis
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from pgbackup import database_comment, database_exists
from services import activity, copy_retries
from services.backups import mark, remove_files, target_connection
from services.claims import claiming_jobs, drop_claimed
from services.extensions import db
from services.models import ACTIVE_STATUSES, Backup, Restore

log = logging.getLogger(__name__)
LIVE_STATUSES = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


def reconcile_backups(connection: Redis) -> list[str]:
    """Settle active backups and restores whose job can no longer finish: failed, or, for
    an overwrite whose swap had taken place, completed. Returns the ids of the failed."""
    failed = []
    for model in (Backup, Restore):
        active = db.session.scalars(select(model).where(model.status.in_(ACTIVE_STATUSES)))
        # mypy joins the two models to their base class; the query returns rows of ``model``
        for row in cast("Sequence[Backup | Restore]", active.all()):
            reason = _why_job_cannot_finish(row.job_id or row.id, connection)
            if reason is not None and settle(row, reason) == "failed":
                failed.append(row.id)
    _drop_abandoned_claims(connection)
    copy_retries.settle_lost(connection)
    return failed


def _drop_abandoned_claims(connection: Redis) -> None:
    """Databases left by jobs that ended or died (verifications have no catalog row)."""
    for job_id in claiming_jobs():
        if _why_job_cannot_finish(job_id, connection) is None and not _finished(job_id,
                                                                                connection):
            continue
        for sentence in drop_claimed(job_id):
            log.warning("job %s: %s", job_id, sentence)


def _finished(job_id: str, connection: Redis) -> bool:
    try:
        return Job.fetch(job_id, connection=connection).get_status() == JobStatus.FINISHED
    except NoSuchJobError:
        return True


def settle(row: Backup | Restore, reason: str) -> str:
    """End an active row whose job will not finish, for ``reason``; returns the status.

    Also RQ's failure callback for abandoned jobs (jobs.backup, jobs.restore).
    """
    if isinstance(row, Restore):
        swap = _swap_state(row)
        if swap == "done":
            _complete_after_swap(row, reason)
            return "completed"
        if _renamed_into_target(row):
            _complete_after_rename(row, reason)
            return "completed"
        if swap == "not-done":
            reason += f"; {row.target_database} was not replaced"
        reason = "; ".join([reason, *drop_claimed(row.job_id or row.id)])
    _fail(row, reason)
    return "failed"


def _swap_state(restore: Restore) -> str | None:
    """For an overwrite that named its swap (it does so once the copy is checked): "done"
    when the copy no longer exists under its own name and the old database exists under
    its retired name (the renames happen in one transaction), "not-done" when the copy is
    still there, None when it cannot be told."""
    if not (restore.replacement_database and restore.retired_database):
        return None
    try:
        server = target_connection()
        copy_there = database_exists(server, restore.replacement_database)
        old_there = database_exists(server, restore.retired_database)
    except psycopg.Error as exc:
        log.warning("restore %s: cannot tell whether its swap took place: %s", restore.id,
                    exc.__class__.__name__)
        return None
    if copy_there:
        return "not-done"
    return "done" if old_there else None


def _complete_after_swap(restore: Restore, reason: str) -> None:
    live, retired = restore.target_database, restore.retired_database
    warning = (f"the worker stopped after the swap ({reason}): {live} holds the restored "
               f"data, checked against the manifest before the swap; the replaced database "
               f"was kept as {retired} and may refuse connections (ALTER DATABASE ... "
               "ALLOW_CONNECTIONS true); drop it once it is no longer needed")
    mark(restore, "completed", result={
        "database": live, "matchesManifest": True, "safetyBackupId": restore.safety_backup_id,
        "warnings": [warning]})
    activity.record("restore.run", restore.id, detail=f"{live}; settled after its worker "
                    "stopped", actor="worker")
    log.warning("restore %s marked completed: %s", restore.id, warning)


def restored_mark(restore: Restore) -> str:
    """The comment a new-database restore leaves on its database, to recognise it later."""
    return f"restored by pgbackup: {restore.id} of {restore.backup_id}"


def _renamed_into_target(restore: Restore) -> bool:
    """A new-database restore renames its checked working database to the target as its
    last step; the target carries the restore's mark only if that rename took place."""
    if restore.mode != "new-database":
        return False
    try:
        comment = database_comment(target_connection(), restore.target_database)
    except psycopg.Error as exc:
        log.warning("restore %s: cannot tell whether it finished: %s", restore.id,
                    exc.__class__.__name__)
        return False
    return comment == restored_mark(restore)


def _complete_after_rename(restore: Restore, reason: str) -> None:
    database = restore.target_database
    warning = (f"the worker stopped right after the restore ({reason}): {database} holds "
               "the restored data, checked against the manifest before it got its name")
    mark(restore, "completed", result={"database": database, "matchesManifest": True,
                                       "warnings": [warning]})
    drop_claimed(restore.job_id or restore.id)
    activity.record("restore.run", restore.id, detail=f"{database}; settled after its "
                    "worker stopped", actor="worker")
    log.warning("restore %s marked completed: %s", restore.id, warning)


def _fail(row: Backup | Restore, reason: str) -> None:
    kind = "restore" if isinstance(row, Restore) else "backup"
    mark(row, "failed", error=f"the {kind} job did not finish: {reason}")
    if isinstance(row, Backup):
        remove_files(row)
    log.warning("%s %s marked failed: %s", kind, row.id, reason)


def _why_job_cannot_finish(job_id: str, connection: Redis) -> str | None:
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return "its job is gone from the queue (was Redis flushed or restarted?)"
    status = job.get_status()
    if status in LIVE_STATUSES:
        return None
    if status == JobStatus.STARTED:
        return dead_worker_reason(job.worker_name, connection)
    if status == JobStatus.FINISHED:
        return None  # the job commits its own outcome; a finished job already did
    return f"its job ended as {status.value}"


def dead_worker_reason(worker_name: str | None, connection: Redis) -> str | None:
    """Why the worker running a job is dead, or None while it still lives."""
    if not worker_name:
        return None
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection)
    if worker is None or worker.death_date is not None:
        return f"worker {worker_name} has stopped"
    if worker.hostname == socket.gethostname() and not _pid_alive(worker.pid):
        return f"worker {worker_name} (pid {worker.pid}) died"
    stale_after = timedelta(seconds=worker.worker_ttl + 60)
    heartbeat = worker.last_heartbeat
    if heartbeat and datetime.now(UTC) - heartbeat.replace(tzinfo=UTC) > stale_after:
        return f"worker {worker_name} stopped sending heartbeats"
    return None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
