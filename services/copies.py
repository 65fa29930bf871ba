"""A backup's copies at its destinations.

The copies are recorded with the backup (``pending``), filled in by the backup job as each
destination is written (``stored`` with its size and SHA-256 at the destination, or
``failed`` with the error), and read from by verification and restore: a local copy
first, then the others in the order they were named, each skipped when it cannot be read.
An optional copy that failed is ``retrying`` while a copy job (jobs.copy) makes it again
from a stored copy, automatically after COPY_RETRY_INTERVALS or on request, and
``failed`` once the last try failed; it is never ``stored`` before its manifest is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Callback, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from jobs.queues import BACKUP_QUEUE, JOB_TIMEOUT, RESULT_TTL, queue, redis_connection
from pgbackup import (
    BackupError,
    LocalStorage,
    Manifest,
    ManifestError,
    ObjectStoreError,
    S3Storage,
    Storage,
    artifact_name,
    manifest_name,
    read_manifest,
)
from pgbackup.archive import missing_identities
from pgbackup.dump import Copy, Target
from pgbackup.encryption import Identity, load_identities, recipients_of
from pgbackup.globals import globals_name
from pgbackup.recoverykit import write_restore_file
from pgbackup.transfer import transfer
from services import activity, destinations, manifest_key
from services.errors import CatalogError
from services.extensions import db
from services.models import Backup, BackupCopy, Destination, utcnow

log = logging.getLogger(__name__)

RETRYING = "retrying"
LIVE_JOB = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED)


def plan(backup: Backup, chosen: Sequence[Destination]) -> list[BackupCopy]:
    """A pending copy per destination, added to the backup; the caller commits them
    together with the backup."""
    planned = [BackupCopy(destination=destination.name, required=destination.required,
                          encrypted=bool(destination.encrypt_to), status="pending", attempts=0)
               for destination in chosen]
    backup.copies.extend(planned)
    return planned


def targets(backup: Backup) -> list[tuple[BackupCopy, Target]]:
    """The engine's targets for a backup's pending copies (planned with the default
    destinations when the backup has none yet: a safety backup, say)."""
    if not backup.copies:
        plan(backup, destinations.resolve(None))
    pairs = []
    for copy in of(backup):
        destination = destination_of(copy)
        try:
            storage = destinations.storage_for(destination)
        except Exception as exc:  # a directory that cannot be made, a key that will not decrypt
            if copy.required:
                raise BackupError(f"writing to {destination.name} failed: {exc}") from exc
            record_failed(copy, f"cannot open {destination.name}: {exc}")
            continue  # an optional destination fails alone, as it would while writing
        pairs.append((copy, Target(destination.name, storage,
                                   tuple(destination.encrypt_to or ()), copy.required)))
    return pairs


def record(copy: BackupCopy, result: Copy) -> None:
    """What the dump did at ``copy``'s destination."""
    if result.manifest is None:
        record_failed(copy, result.error or "not stored")
        return
    _record_stored_at(copy, result.manifest, result.target.storage)


# ---- reading: the first copy that can be read ---------------------------------------

@dataclass(frozen=True)
class Source:
    """The copy a backup is read from, and why the copies before it were skipped."""

    storage: Storage
    copy: BackupCopy | None  # None: a backup from before copies, read from BACKUP_DIR
    skipped: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        """One sentence for results: which copy was read, when others were skipped."""
        if not self.skipped or self.copy is None:
            return None
        return (f"read the copy at {self.copy.destination}: skipped "
                + "; ".join(self.skipped))


class Unreadable(Exception):
    """A copy that cannot be read now (unreachable, missing, no identity for it)."""


def source(backup: Backup, decrypting: bool = True,
           besides: BackupCopy | None = None) -> Source:
    """Where to read ``backup`` from: its stored copies, local ones first, skipping those
    that cannot be read (with ``decrypting``, also encrypted ones without an identity for
    them), and ``besides``. None readable: the first, whose reading then says what is
    wrong. A backup without copy records is read from BACKUP_DIR."""
    if not backup.copies:
        return Source(LocalStorage(current_app.config["BACKUP_DIR"]), None)
    stored = [copy for copy in readable(backup) if copy is not besides]
    if not stored:
        raise CatalogError(f"backup {backup.id} has no stored copy to read from",
                           status=409, code="backup_missing")
    skipped: list[str] = []
    for copy in stored:
        try:
            return Source(_probe(backup, copy, decrypting), copy, skipped)
        except Unreadable as exc:
            skipped.append(f"{copy.destination} ({exc})")
    return Source(storage_of(stored[0]), stored[0])


def _probe(backup: Backup, copy: BackupCopy, decrypting: bool) -> Storage:
    """``copy``'s storage if its manifest and artifact can be read; else Unreadable."""
    try:
        storage = storage_of(copy)
        manifest = read_manifest(storage, backup.id)
        if not storage.exists(manifest.artifact):
            raise Unreadable(f"its artifact {manifest.artifact} is missing")
    except FileNotFoundError:
        raise Unreadable(f"its manifest {manifest_name(backup.id)} is missing") from None
    except (ObjectStoreError, OSError, CatalogError, ManifestError) as exc:
        raise Unreadable(str(exc)) from None
    if decrypting and (problem := _no_identity(manifest)):
        raise Unreadable(problem)
    return storage


def _no_identity(manifest: Manifest) -> str | None:
    """Why an encrypted copy cannot be decrypted here, if it cannot."""
    keys = identities()
    if problem := missing_identities(manifest, keys):
        return problem
    if manifest.encryption and not set(recipients_of(keys or [])) & set(
            manifest.encryption.recipients):
        return "no configured identity is among its recipients"
    return None


def identities() -> list[Identity] | None:
    """The age identities of BACKUP_AGE_IDENTITIES, to decrypt encrypted copies."""
    path = current_app.config.get("BACKUP_AGE_IDENTITIES")
    return load_identities(Path(path)) if path else None


def artifact_of(backup: Backup, copy: BackupCopy) -> str:
    """The artifact's name at ``copy``'s destination, recorded or not yet: an encrypted
    copy's ends in ``.age``."""
    return copy.artifact or artifact_name(backup.id, backup.compress, encrypted=copy.encrypted)


def of(backup: Backup) -> list[BackupCopy]:
    return sorted(backup.copies, key=lambda copy: copy.id or 0)


def destination_of(copy: BackupCopy) -> Destination:
    return destinations.by_name(copy.destination)


def storage_of(copy: BackupCopy) -> Storage:
    return destinations.storage_for(destination_of(copy))


def keeps_objects(copy: BackupCopy) -> bool:
    """Whether ``copy``'s destination never deletes (``deleteObjects: false``: a key
    without delete permission), leaving its objects to the bucket's lifecycle rules."""
    try:
        return (destination_of(copy).settings or {}).get("deleteObjects", True) is False
    except CatalogError:  # its destination is gone: nothing to ask
        return False


def readable(backup: Backup) -> list[BackupCopy]:
    """The stored copies, local ones first: where to read the backup from."""
    stored = [copy for copy in of(backup) if copy.status == "stored"]
    return sorted(stored, key=lambda copy: not _is_local(copy))


def _is_local(copy: BackupCopy) -> bool:
    try:
        return destination_of(copy).type == "local"
    except CatalogError:  # its destination is gone: read last
        return False


# ---- recording ------------------------------------------------------------------------

def _record_stored_at(copy: BackupCopy, manifest: Manifest, storage: Storage) -> None:
    artifact = manifest.artifact
    locked = storage.locked_until(artifact) if isinstance(storage, S3Storage) else None
    record_stored(copy, manifest, storage.location(artifact),
                  locked.replace(tzinfo=None) if locked else None)


def record_stored(copy: BackupCopy, manifest: Manifest, location: str,
                  locked_until: datetime | None) -> None:
    copy.status, copy.error = "stored", None
    copy.artifact, copy.size, copy.sha256 = manifest.artifact, manifest.size, manifest.sha256
    copy.encrypted = manifest.encryption is not None
    copy.location, copy.locked_until = location, locked_until
    copy.stored_at = copy.attempted_at = utcnow()
    copy.attempts += 1


def record_failed(copy: BackupCopy, error: str, retrying: bool = False) -> None:
    """A failed write; ``retrying`` when another attempt is queued."""
    copy.status, copy.error = RETRYING if retrying else "failed", error
    copy.attempted_at = utcnow()
    copy.attempts += 1


# ---- retrying a failed copy -----------------------------------------------------------

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
        "job_timeout": JOB_TIMEOUT, "result_ttl": RESULT_TTL, "failure_ttl": RESULT_TTL,
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
                                             encrypted=bool(recipients)), backup.id)
    manifest = transfer(origin.storage, storage, backup.id, recipients, identities(),
                        manifest_key.key())
    _record_stored_at(copy, manifest, storage)
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
