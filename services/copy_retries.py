"""Making a failed copy again, from a stored copy of the same backup.

A backup's optional copy that failed is ``retrying`` while a copy job (jobs.copy) makes it
again: queued after COPY_RETRY_INTERVALS[0] seconds and retried by RQ after each of the
others, or at once on request. ``failed`` once the last try failed; ``stored`` only once
the copy's manifest is written. One job per copy (``copy-<backup id>-<copy id>``); its
arguments are the backup's id and the destination's name, never a secret.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from jobs.queues import (
    BACKUP_QUEUE,
    FAILURE_TTL,
    JOB_TIMEOUT,
    RESULT_TTL,
    queue,
    redis_connection,
)
from pgbackup import Storage, artifact_name, manifest_name
from pgbackup.globals import globals_name
from pgbackup.recoverykit import write_restore_file
from pgbackup.transfer import transfer
from services import activity, destinations, manifest_key
from services.copies import (
    RETRYING,
    destination_of,
    identities,
    of,
    readable,
    record_failed,
    record_stored_at,
    source,
)
from services.errors import CatalogError
from services.extensions import db
from services.models import Backup, BackupCopy

log = logging.getLogger(__name__)

LIVE_JOB = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED)


def retry_failed(backup: Backup) -> list[str]:
    """Queue a copy job, retried as COPY_RETRY_INTERVALS says, for each failed copy of a
    completed backup; returns the job ids (none when the setting is empty)."""
    intervals = list(current_app.config["COPY_RETRY_INTERVALS"])
    failed = [copy for copy in of(backup) if copy.status == "failed"]
    if not intervals or not failed or backup.status != "completed":
        return []
    return [_enqueue(backup, copy, intervals) for copy in failed]


def retry(backup_id: str, destination: str, actor: str | None = None) -> str:
    """Make ``backup_id``'s copy at ``destination`` again now, from a stored copy (one
    attempt); returns the job id."""
    backup = db.session.get(Backup, backup_id)
    copy = _copy_at(backup, destination)
    if backup is None or copy is None:
        raise CatalogError(f"backup {backup_id!r} has no copy at {destination!r}",
                           status=404, code="not_found")
    _refuse_retry(backup, copy)
    job_id = _enqueue(backup, copy, [0])
    activity.record("backup.copy.retry", backup.id, detail=f"{destination}, job {job_id}",
                    actor=actor)
    return job_id


def _refuse_retry(backup: Backup, copy: BackupCopy) -> None:
    """Refuse a copy that is stored, or has nothing to be made from, or is being made; a
    retry waiting for its interval is replaced (this one runs now)."""
    if copy.status == "stored":
        raise CatalogError(f"the copy of {backup.id} at {copy.destination} is stored",
                           status=409, code="copy_stored")
    if backup.status != "completed" or not [c for c in readable(backup) if c is not copy]:
        raise CatalogError(f"backup {backup.id} ({backup.status}) has no stored copy to make "
                           f"the copy at {copy.destination} from", status=409,
                           code="no_stored_copy")
    try:
        job = Job.fetch(job_id_of(copy), connection=redis_connection())
        if job.get_status() == JobStatus.SCHEDULED:
            job.delete()
        elif job.get_status() in LIVE_JOB:
            raise CatalogError(f"the copy of {backup.id} at {copy.destination} is being "
                               "made already", status=409, code="copy_retrying")
    except NoSuchJobError:
        pass
    except RedisError as exc:
        raise CatalogError.queue_unavailable(exc, "nothing was queued") from exc


def job_id_of(copy: BackupCopy) -> str:
    """One job id per copy: at most one job makes a copy at a time."""
    return f"copy-{copy.backup_id}-{copy.id}"


def _enqueue(backup: Backup, copy: BackupCopy, intervals: list[int]) -> str:
    """Queue the copy job after ``intervals[0]`` seconds, retried after each of the
    others; the copy is ``retrying`` once the job is queued (committed)."""
    first, later = intervals[0], intervals[1:]
    options: dict[str, Any] = {
        "job_id": job_id_of(copy), "description": f"copy of {backup.id} to {copy.destination}",
        "job_timeout": JOB_TIMEOUT, "result_ttl": RESULT_TTL, "failure_ttl": FAILURE_TTL,
        "on_failure": Callback("jobs.copy.on_copy_failure"),
        "retry": Retry(max=len(later), interval=later) if later else None,
    }
    args = (backup.id, copy.destination)
    try:
        if first:
            queue(BACKUP_QUEUE).enqueue_in(timedelta(seconds=first), "jobs.copy.run_copy",
                                           *args, **options)
        else:
            queue(BACKUP_QUEUE).enqueue("jobs.copy.run_copy", *args, **options)
    except RedisError as exc:
        db.session.rollback()
        raise CatalogError.queue_unavailable(exc, "nothing was queued") from exc
    copy.status = RETRYING
    db.session.commit()
    return job_id_of(copy)


def copy_again(backup_id: str, destination: str) -> BackupCopy | None:
    """What the copy job does: write ``destination``'s copy from the first readable stored
    copy; raises what stopped it (BackupError, DecryptionError, ObjectStoreError...).
    None when there is nothing to do: the backup or copy is gone, or stored meanwhile."""
    backup = db.session.get(Backup, backup_id)
    copy = _copy_at(backup, destination)
    if backup is None or copy is None or copy.status == "stored":
        return None
    target = destination_of(copy)
    storage = destinations.storage_for(target)
    origin = source(backup, besides=copy)
    recipients = list(target.encrypt_to or ())
    _remove_leftovers(storage, artifact_name(backup.id, backup.compress,
                                             encrypted=bool(recipients), kind=backup.type),
                      backup.id)
    manifest = transfer(origin.storage, storage, backup.id, recipients, identities(),
                        manifest_key.key())
    record_stored_at(copy, manifest, storage)
    db.session.commit()
    _leave_restore_file(storage, destination)
    read_from = origin.copy.destination if origin.copy else destinations.BUILTIN
    activity.record("backup.copy", backup.id, actor="worker",
                    detail=f"{destination}: {manifest.size} bytes, from {read_from}")
    return copy


def _leave_restore_file(storage: Storage, destination: str) -> None:
    """The recovery kit's RESTORE file, as a backup leaves it; never fails the copy."""
    try:
        write_restore_file(storage)
    except Exception as exc:
        log.warning("could not write the RESTORE file at %s: %s", destination, exc)


def _copy_at(backup: Backup | None, destination: str) -> BackupCopy | None:
    if backup is None:
        return None
    return next((copy for copy in backup.copies if copy.destination == destination), None)


def _remove_leftovers(storage: Storage, artifact: str, backup_id: str) -> None:
    """What an earlier attempt killed mid-way may have left under the copy's names: the
    catalog says the copy is not stored, so nothing there is a backup."""
    for name in (artifact, globals_name(artifact)):
        storage.delete(name)
        storage.remove_partial_for(name)
    storage.delete(manifest_name(backup_id))


def settle_failed(backup_id: str, destination: str, error: str, retrying: bool) -> None:
    """The copy job failed (or its worker died): ``retrying`` if RQ tries again."""
    copy = _copy_at(db.session.get(Backup, backup_id), destination)
    if copy is None or copy.status == "stored":
        return
    record_failed(copy, error, retrying)
    db.session.commit()
    activity.record("backup.copy", backup_id, outcome="failed", actor="worker",
                    detail=f"{destination}: {error}")


def stop_before_delete(backup: Backup) -> None:
    """Cancel the copy jobs still waiting for ``backup``, so none writes a copy of a
    deleted backup; refused (409) while one is writing."""
    for copy in backup.copies:
        if copy.status != RETRYING:
            continue
        try:
            job = Job.fetch(job_id_of(copy), connection=redis_connection())
            if job.get_status() == JobStatus.STARTED:
                raise CatalogError(
                    f"a copy of backup {backup.id} is being written to {copy.destination}; "
                    "delete it when that job has ended", status=409, code="backup_busy")
            job.cancel()
            job.delete()
        except NoSuchJobError:
            continue
        except RedisError as exc:
            raise CatalogError.queue_unavailable(exc, "nothing was deleted") from exc


def settle_lost(connection: Redis) -> list[str]:
    """``failed`` for each copy ``retrying`` whose job is gone (Redis flushed or lost):
    nothing will make it; a retry on request still can. Returns their job ids."""
    lost = []
    for copy in db.session.scalars(select(BackupCopy).where(BackupCopy.status == RETRYING)):
        try:
            Job.fetch(job_id_of(copy), connection=connection)
        except NoSuchJobError:
            record_failed(copy, "its copy job was lost (was Redis flushed?): retry it")
            lost.append(job_id_of(copy))
    db.session.commit()
    return lost
