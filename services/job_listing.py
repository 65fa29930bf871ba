"""The app's jobs as RQ holds them: ``GET /api/system/jobs`` and ``flask jobs list``.

A job is found where RQ keeps it: its queue (``queued``), the queue's registries
(``started``, ``deferred``, ``scheduled`` in RQ's own scheduler, ``finished``, ``failed``,
``canceled``), and rq-scheduler's registrations (schedule slots, the daily clean-up, alert
evaluation; ``scheduled`` too). RQ forgets a finished job after RESULT_TTL and a failed one
after FAILURE_TTL (jobs.queues). Reading never changes anything: RQ's registry clean-up,
which fails abandoned jobs, is left to the workers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, cast, get_args

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from rq.utils import as_text
from rq_scheduler import Scheduler
from sqlalchemy import select

from jobs.queues import QUEUES, redis_connection
from services.backups import JobStatus, describe_job
from services.errors import CatalogError
from services.extensions import db
from services.models import Backup, Restore

RqStatus = Literal["queued", "started", "scheduled", "deferred", "finished", "failed",
                   "canceled"]
RQ_STATUSES: tuple[str, ...] = get_args(RqStatus)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
REGISTRIES = {"started": "started_job_registry", "scheduled": "scheduled_job_registry",
              "deferred": "deferred_job_registry", "finished": "finished_job_registry",
              "failed": "failed_job_registry", "canceled": "canceled_job_registry"}


def list_jobs(status: str | None = None, limit: int = DEFAULT_LIMIT) -> list[JobStatus]:
    """The ``limit`` newest jobs (by creation), of one RQ status or of any."""
    if status is not None and status not in RQ_STATUSES:
        raise CatalogError(f"unknown status {status!r}: use one of {', '.join(RQ_STATUSES)}",
                           code="invalid_status")
    connection = redis_connection()
    try:
        ids = _job_ids(connection, status, limit)
        jobs = [job for job in Job.fetch_many(ids, connection=connection) if job is not None]
    except RedisError as exc:
        raise CatalogError.queue_unavailable(exc) from exc
    if status is not None:  # a job may linger in a registry it has left
        jobs = [job for job in jobs if job.get_status(refresh=False) == status]
    jobs = sorted(jobs, key=lambda job: job.created_at, reverse=True)[:limit]
    rows = _rows_for(job.id for job in jobs)
    return [describe_job(job.id, job, rows.get(job.id)) for job in jobs]


def _job_ids(connection: Redis, status: str | None, limit: int) -> list[str]:
    """The ids where RQ keeps jobs of ``status`` (None: every status), the newest ``limit``
    of each place; once each."""
    ids: list[str] = []
    for name in QUEUES:
        queue = Queue(name, connection=connection)
        if status in (None, "queued"):  # enqueued at the right end
            ids += [as_text(job_id) for job_id in connection.lrange(queue.key, -limit, -1)]
        for registry_status, attribute in REGISTRIES.items():
            if status in (None, registry_status):
                registry = getattr(queue, attribute)
                ids += registry.get_job_ids(end=limit - 1, desc=True, cleanup=False)
    if status in (None, "scheduled"):  # one registration per schedule, and two more
        listed = cast("list[bytes]", connection.zrange(Scheduler.scheduled_jobs_key, 0, -1))
        ids += [as_text(job_id) for job_id in listed]
    return list(dict.fromkeys(ids))


def _rows_for(job_ids: Iterable[str]) -> dict[str, Backup | Restore]:
    """The backups and restores these jobs work on, by job id, in two queries; a backup
    first, as job_status finds them (a restore's safety backup carries its job id)."""
    wanted = list(job_ids)
    rows: list[Backup | Restore] = [
        *db.session.scalars(select(Backup).where(Backup.job_id.in_(wanted))),
        *db.session.scalars(select(Restore).where(Restore.job_id.in_(wanted)))]
    found: dict[str, Backup | Restore] = {}
    for row in rows:
        found.setdefault(row.job_id or "", row)
    return found
