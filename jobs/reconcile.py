"""Bring the catalog back in line with what RQ can still finish.

A worker killed mid-backup leaves its catalog row "running" and a ``.partial`` file.
RQ notices an abandoned job only after its heartbeat expires; this check is quicker
and runs whenever a worker starts and on every worker maintenance pass.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from catalog import mark, storage
from extensions import db
from models import ACTIVE_STATUSES, Backup, Restore

log = logging.getLogger(__name__)
LIVE_STATUSES = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


def reconcile_backups(connection: Redis) -> list[str]:
    """Fail active backups and restores whose job can no longer finish; returns their ids."""
    failed = []
    for model in (Backup, Restore):
        active = db.session.scalars(select(model).where(model.status.in_(ACTIVE_STATUSES)))
        for row in active.all():
            reason = _why_job_cannot_finish(row.job_id or row.id, connection)
            if reason is not None:
                _fail(row, reason)
                failed.append(row.id)
    return failed


def _fail(row: Backup | Restore, reason: str) -> None:
    kind = "restore" if isinstance(row, Restore) else "backup"
    mark(row, "failed", error=f"the {kind} job did not finish: {reason}")
    if isinstance(row, Backup) and row.filename:
        storage().remove_partial_for(row.filename)
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
