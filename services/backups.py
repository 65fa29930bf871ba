"""Backup operations shared by the JSON API, the dashboard and the CLI.

Callers validate input; these functions change the catalog, the queue and the storage
together, so that a failure never leaves one of them half done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

from flask import current_app
from redis.exceptions import RedisError
from rq import Callback
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import Select, asc, desc, func, literal, select, tuple_
from sqlalchemy.orm import selectinload

from jobs.queues import (
    BACKUP_QUEUE,
    FAILURE_TTL,
    JOB_TIMEOUT,
    RESTORE_QUEUE,
    RESULT_TTL,
    VERIFY_QUEUE,
    queue,
    redis_connection,
)
from pgbackup import (
    ConnectionInfo,
    LocalStorage,
    Storage,
    artifact_name,
    backup_id_time,
    is_backup_id,
    manifest_name,
    new_backup_id,
)
from pgbackup.globals import globals_name
from services import (
    activity,
    artifact_presence,
    catalog_version,  # also: its session events count every backup write
    copies,
    copy_retries,
)
from services.artifact_presence import check_files
from services.destinations import resolve as resolve_destinations
from services.errors import CatalogError
from services.extensions import db
from services.models import ACTIVE_STATUSES, UNRESTORABLE, Backup, Deletion, Restore, utcnow

log = logging.getLogger(__name__)


ADMISSION_LOCK = "pgbackup:admission"
ADMISSION_SECONDS = 30
_admission = threading.local()  # whether this thread holds the admission lock


def storage() -> LocalStorage:
    return LocalStorage(current_app.config["BACKUP_DIR"])


def target_connection() -> ConnectionInfo:
    return ConnectionInfo.from_url(current_app.config["DATABASE_URL"])


def create_backup(
    kind: str, compress: bool = True, origin: str = "manual", schedule_id: int | None = None,
    destinations: Sequence[str] | None = None,
) -> Backup:
    """Record a queued backup with a pending copy per destination (``destinations``, or
    DEFAULT_DESTINATIONS) and enqueue its job; none of it exists if enqueueing fails."""
    chosen = resolve_destinations(list(destinations) if destinations else None)
    with admitted("nothing was created"):
        _refuse_during_restore(current_app.config["TARGET_DATABASE"])
        backup = new_backup_row(kind, compress, origin)
        backup.schedule_id = schedule_id
        copies.plan(backup, chosen)
        assert backup.job_id is not None  # new_backup_row names the job: the backup's id
        commit_then_enqueue(backup, BACKUP_QUEUE, "jobs.backup.run_backup", backup.job_id,
                            f"{kind} backup of {backup.database} ({backup.id})", backup.id,
                            consequence="nothing was created")
    activity.record("backup.create", backup.id, detail=f"{kind}, origin {origin}")
    return backup


FAILURE_CALLBACKS = {BACKUP_QUEUE: "jobs.backup.on_backup_failure",
                     RESTORE_QUEUE: "jobs.restore.on_restore_failure",
                     VERIFY_QUEUE: "jobs.verify.on_verify_failure"}


def enqueue(queue_name: str, func: str, job_id: str, description: str, *args: Any,
            consequence: str) -> None:
    """Queue a job with the failure callback that cleans up after it; when Redis cannot
    take it, roll back what the caller recorded and refuse (``consequence`` says so)."""
    try:
        _queue_job(queue_name, func, job_id, description, *args)
    except RedisError as exc:
        db.session.rollback()
        raise CatalogError.queue_unavailable(exc, consequence) from exc


def commit_then_enqueue(row: Backup | Restore, queue_name: str, func: str, job_id: str,
                        description: str, *args: Any, consequence: str) -> None:
    """Commit ``row`` (and what else the caller recorded), then queue the job that runs
    it. In this order a worker taking the job at once finds its row committed; queued
    first, a quick worker found no row yet and refused to run the job. When Redis cannot
    take the job, the row is deleted again (with its copies) and the request refused."""
    db.session.commit()
    try:
        _queue_job(queue_name, func, job_id, description, *args)
    except RedisError as exc:
        db.session.delete(row)
        db.session.commit()
        raise CatalogError.queue_unavailable(exc, consequence) from exc


def _queue_job(queue_name: str, func: str, job_id: str, description: str, *args: Any) -> None:
    queue(queue_name).enqueue(
        func, *args, job_id=job_id, description=description, job_timeout=JOB_TIMEOUT,
        result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
        on_failure=Callback(FAILURE_CALLBACKS[queue_name]),
    )


@contextmanager
def admitted(consequence: str) -> Iterator[None]:
    """Hold the app's admission lock (in Redis) while a request checks for conflicting
    work and records a new backup or restore, so that requests arriving together are
    decided one after the other: a backup and a restore over the database can never both
    be accepted. ``consequence`` completes the 503 when Redis is unreachable. Reentrant
    within a thread: a scheduled slot holds it while it records its run and its backup."""
    if getattr(_admission, "held", False):
        yield
        return
    lock = redis_connection().lock(ADMISSION_LOCK, timeout=ADMISSION_SECONDS,
                                   blocking_timeout=ADMISSION_SECONDS)
    try:
        acquired = lock.acquire()
    except RedisError as exc:
        raise CatalogError.queue_unavailable(exc, consequence) from exc
    if not acquired:
        raise CatalogError("another backup or restore is being started; try again",
                           status=409, code="busy")
    _admission.held = True
    try:
        yield
    finally:
        _admission.held = False
        with suppress(RedisError):  # expired (after ADMISSION_SECONDS) or Redis gone
            lock.release()


def new_backup_row(
    kind: str, compress: bool = True, origin: str = "manual", job_id: str | None = None
) -> Backup:
    """A queued catalog row (flushed, not committed) for a backup of the target database.

    ``job_id`` names the job that takes it: its own (the default, the backup's id) or, for
    a safety backup, the restore job that runs it.
    """
    backup_id = _unused_backup_id()
    backup = Backup(
        id=backup_id,
        # The id's time, which the manifest records too: one created time for the backup.
        created_at=backup_id_time(backup_id).replace(tzinfo=None),
        job_id=job_id or backup_id,
        database=current_app.config["TARGET_DATABASE"],
        type=kind,
        compress=compress,
        origin=origin,
        filename=artifact_name(backup_id, compress, kind=kind),
    )
    db.session.add(backup)
    db.session.flush()
    return backup


def _refuse_during_restore(database: str) -> None:
    """A backup and a restore of the same database never run at the same time."""
    active = db.session.scalars(select(Restore).where(
        Restore.status.in_(ACTIVE_STATUSES), Restore.mode == "overwrite",
        Restore.target_database == database)).first()
    if active is not None:
        raise CatalogError(
            f"restore {active.id} over {database} is {active.status}; back up once it "
            "has finished", status=409, code="restore_running",
        )


def _unused_backup_id() -> str:
    """A fresh id; ids have millisecond resolution, so step past any clash."""
    backup_id = new_backup_id()
    while db.session.get(Backup, backup_id) is not None:
        backup_id = new_backup_id()
    return backup_id


def checked_id(backup_id: str) -> str:
    """A backup id sent in a body; ids in paths are checked by blueprints.converters."""
    if not is_backup_id(backup_id):
        raise CatalogError(
            f"invalid backup id {backup_id!r}: ids look like backup-2024-01-15T10-30-00-000Z",
            code="invalid_id",
        )
    return backup_id


def get_backup(backup_id: str) -> Backup:
    """The backup, ``missing`` if its files are gone (artifact_presence)."""
    backup = db.session.get(Backup, backup_id)
    if backup is None:
        raise CatalogError(f"no backup with id {backup_id!r}", status=404, code="not_found")
    check_files([backup])
    return backup



def completed_backup(backup_id: str, restoring: bool = True) -> Backup:
    """The completed backup; to be restored, also with its files in place (verifying one
    whose files are missing is how it becomes valid again once they are put back)."""
    backup = get_backup(backup_id)
    if backup.status != "completed":
        raise CatalogError(
            f"backup {backup_id} is {backup.status}; only completed backups can be "
            "verified or restored", status=409, code="backup_not_completed",
        )
    if restoring and backup.verification == artifact_presence.MISSING:
        raise CatalogError(
            f"backup {backup_id} cannot be restored: {artifact_presence.problem(backup)}. "
            "Put its files back into BACKUP_DIR and verify it, or restore another backup",
            status=409, code="backup_missing",
        )
    return backup


def delete_backup(backup_id: str, actor: str, reason: str = "deleted by hand") -> None:
    """Remove artifact, manifest and catalog row, and log why; refused while a job works
    on the backup or another backup depends on it."""
    backup = get_backup(backup_id)
    if backup.is_active:
        raise CatalogError(
            f"backup {backup_id} is {backup.status}; wait for its job to end before deleting",
            status=409, code="backup_busy",
        )
    children = children_of(backup.id)
    if children:
        raise CatalogError(f"backup {children[0].id} depends on {backup_id}; delete it first",
                           status=409, code="backup_has_dependents")
    _refuse_while_locked(backup)
    copy_retries.stop_before_delete(backup)
    files = stored_files(backup)
    left = [f"{copy.destination}: left to the bucket's lifecycle rules"
            for copy in backup.copies if copies.keeps_objects(copy)]
    db.session.delete(backup)
    db.session.add(Deletion(backup_id=backup.id, actor=actor, reason=reason))
    db.session.commit()
    # Files go after the catalog row: never a catalog row without its file.
    problems = remove_stored(files, backup.id)
    activity.record("backup.delete", backup.id, actor=actor, outcome="failed" if problems
                    else "ok", detail="; ".join([reason, *left, *problems]))
    log.info("deleted backup %s (%s: %s)", backup.id, actor, reason)


def _refuse_while_locked(backup: Backup) -> None:
    """A copy under S3 Object Lock cannot be deleted yet: deleting the backup now would
    forget a copy that stays in the bucket."""
    now = utcnow()
    locked = [copy for copy in backup.copies if copy.status == "stored"
              and copy.locked_until is not None and copy.locked_until > now
              and not copies.keeps_objects(copy)]
    if locked:
        until = max(copy.locked_until for copy in locked if copy.locked_until)
        raise CatalogError(
            f"backup {backup.id} has a copy at {locked[0].destination} locked until "
            f"{until:%Y-%m-%d %H:%M} UTC (S3 Object Lock); it can be deleted after that",
            status=409, code="backup_locked")


def remove_files(backup: Backup) -> list[str]:
    """Delete a backup's artifact, any unfinished write of it, and its manifest at every
    destination, in that order: an interruption leaves at worst an artifact that its
    manifest still explains. A deleted backup, and one that is not completed, owns no file.
    Returns what could not be deleted (a destination unreachable, a copy still locked)."""
    return remove_stored(stored_files(backup), backup.id)


# (destination, how to open its storage, artifact): opened only when the files are removed,
# so a destination that cannot be opened (an unmounted disk) is one problem among others.
StoredFile = tuple[str, Callable[[], Storage], str | None]


def stored_files(backup: Backup) -> list[StoredFile]:
    """The files of each of ``backup``'s copies that the app may delete (not at a
    destination that leaves them to its lifecycle rules); read before the catalog row
    goes, since its copies go with it."""
    if not backup.copies:
        return [("local", storage, backup.filename)]
    return [(copy.destination, partial(copies.storage_named, copy.destination),
             copies.artifact_of(backup, copy))
            for copy in backup.copies if not copies.keeps_objects(copy)]


def remove_stored(files: list[StoredFile], backup_id: str) -> list[str]:
    problems = []
    for destination, open_storage, artifact in files:
        try:
            _remove_from(open_storage(), artifact, backup_id)
        except Exception as exc:  # one destination's trouble must not keep the others
            problems.append(f"{destination}: {exc}")
    return problems


def _remove_from(store: Storage, artifact: str | None, backup_id: str) -> None:
    if artifact:
        store.delete(artifact)
        store.remove_partial_for(artifact)  # a killed writer's .partial or S3 upload
        sidecar = globals_name(artifact)  # the saved roles and database settings
        store.delete(sidecar)
        store.remove_partial_for(sidecar)
    store.delete(manifest_name(backup_id))


def artifact_path(backup_id: str) -> Any:
    backup = get_backup(backup_id)
    store = storage()
    if backup.status != "completed" or not backup.filename or not store.exists(backup.filename):
        raise CatalogError(
            f"backup {backup_id} has no downloadable artifact (status {backup.status})",
            status=409, code="not_downloadable",
        )
    return store.path(backup.filename)


@dataclass
class BackupPage:
    backups: list[Backup]
    total: int
    total_size: int


# What a list may be sorted by; ties go to the id, in the same direction. Each order is an
# index walk (services.models.Backup's indexes); sizes not known yet come last either way.
SORT_COLUMNS = {"created": Backup.created_at, "size": Backup.size}


def list_backups(
    kind: str | None = None, status: str | None = None, page: int = 1, per_page: int = 50,
    sort: str = "created", descending: bool = True, after: str | None = None,
) -> BackupPage:
    """Newest first unless ``sort`` (a SORT_COLUMNS key) says otherwise. ``total`` and
    ``total_size`` count every match, not just the page, which the database cuts: by
    LIMIT/OFFSET, or, with ``after`` (a backup id: a keyset cursor, for the ``created``
    order only), from the row after that backup, which costs the same on any page. The
    page's backups are ``missing`` if their files are gone (artifact_presence)."""
    query = select(Backup)
    if kind:
        query = query.where(Backup.type == kind)
    if status:
        query = query.where(Backup.status == status)
    total, total_size = catalog_version.memoized(("totals", kind, status),
                                                  partial(_count, query))
    if after:
        query, page = _after(query, after, descending), 1
    rows = db.session.scalars(
        query.options(selectinload(Backup.copies))  # one query for the page's copies
        .order_by(*_order(sort, descending))
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    check_files(rows)
    return BackupPage(list(rows), total, total_size)


def _order(sort: str, descending: bool) -> tuple[Any, ...]:
    direction = desc if descending else asc
    column = direction(SORT_COLUMNS[sort])
    # NULLS LAST only where there are nulls: on created_at it would keep PostgreSQL from
    # walking the index backwards.
    return (column.nulls_last() if sort == "size" else column), direction(Backup.id)


def _after(query: Select[Any], backup_id: str, descending: bool) -> Select[Any]:
    """The rows past ``backup_id`` in the ``created`` order. A cursor's backup may have been
    deleted since: its id still tells its created time."""
    checked_id(backup_id)
    cursor = db.session.get(Backup, backup_id)
    created = cursor.created_at if cursor else backup_id_time(backup_id).replace(tzinfo=None)
    key, edge = tuple_(Backup.created_at, Backup.id), tuple_(literal(created), literal(backup_id))
    return query.where(key < edge if descending else key > edge)


def totals() -> tuple[int, int]:
    """The number of backups in the catalog and their total size."""
    return catalog_version.memoized(("totals", None, None), partial(_count, select(Backup)))


def _count(query: Select[Any]) -> tuple[int, int]:
    counted = query.subquery()
    count, size = db.session.execute(
        select(func.count(), func.coalesce(func.sum(counted.c.size), 0)).select_from(counted)
    ).one()
    return count, int(size)


def children_of(backup_id: str) -> list[Backup]:
    """The backups that continue ``backup_id`` (its chain's next incrementals), oldest first."""
    return list(db.session.scalars(
        select(Backup).where(Backup.parent_id == backup_id)
        .order_by(Backup.created_at, Backup.id)))


def newest_good_backup() -> Backup | None:
    """The last completed backup not known to be unrestorable; found once per version of
    the list (catalog_version.memoized), since no index orders by finish time."""
    backup_id = catalog_version.memoized(("newest good",), lambda: db.session.scalars(
        select(Backup.id)
        .where(Backup.status == "completed", Backup.verification.not_in(UNRESTORABLE))
        .order_by(Backup.finished_at.desc())
        .limit(1)
    ).first())
    return None if backup_id is None else db.session.get(Backup, backup_id)


@dataclass(frozen=True)
class JobStatus:
    """What a job is doing, from RQ and the catalog; shaped as JSON by blueprints.api.serializers.

    ``status`` is in the catalog's words, ``rq_status`` RQ's own (None once RQ has forgotten
    the job, and then the times, queue, worker and description are None too). ``progress``
    is the job's saved progress as it stored it (camelCase keys). ``worker`` is the name of
    the worker that runs (or ran) it, as ``rq info`` shows it.
    """

    job_id: str
    kind: str
    status: str | None
    rq_status: str | None
    backup_id: str | None
    restore_id: str | None
    error: str | None
    progress: dict[str, Any]
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    queue: str | None = None
    worker: str | None = None
    description: str | None = None


# What a job is, by its entry point, until it says so itself (jobs.progress.tag_job).
KINDS = {"jobs.backup.run_backup": "backup", "jobs.restore.run_restore": "restore",
         "jobs.verify.run_verify": "verification", "jobs.copy.run_copy": "copy",
         "jobs.rescan.run_rescan": "rescan", "jobs.schedule.fire_schedule": "schedule",
         "jobs.schedule.run_cleanup": "retention", "jobs.alerts.evaluate_alerts": "alerts",
         "jobs.alerts.deliver": "notification"}


def job_status(job_id: str) -> JobStatus:
    """A job's RQ status and progress, with the catalog's view of what it works on."""
    try:
        job = Job.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        job = None
    except RedisError as exc:
        raise CatalogError.queue_unavailable(exc) from exc
    row = _row_for_job(job_id)
    if row is None and job is None:
        raise CatalogError(f"no job with id {job_id!r}", status=404, code="not_found")
    return describe_job(job_id, job, row)


def describe_job(job_id: str, job: Job | None, row: Backup | Restore | None) -> JobStatus:
    """A job as fetched from RQ (None: forgotten) and the row it works on, without another
    round trip to Redis or the catalog."""
    meta = job.meta if job else {}
    state = job.get_status(refresh=False) if job else None
    rq_status = state.value if state else None
    restore = row if isinstance(row, Restore) else None
    backup_id = restore.backup_id if restore else row.id if row else meta.get("backupId")
    return JobStatus(
        job_id=job_id,
        kind=meta.get("kind") or (KINDS.get(job.func_name or "") if job else None)
        or ("restore" if restore else "backup"),
        status=row.status if row else _status_from_rq(rq_status),
        rq_status=rq_status,
        backup_id=backup_id,
        restore_id=restore.id if restore else None,
        error=row.error if row else meta.get("error"),
        progress=meta.get("progress", {}),
        enqueued_at=job.enqueued_at if job else None,
        started_at=job.started_at if job else None,
        ended_at=job.ended_at if job else None,
        queue=job.origin if job else None,
        worker=job.worker_name if job else None,
        description=job.description if job else None,
    )


def _row_for_job(job_id: str) -> Backup | Restore | None:
    """The restore first: a restore over the database shares its job id with the safety
    backup it takes."""
    for model in (Restore, Backup):
        # mypy joins the two models to their base class; each query returns rows of ``model``
        row = cast("Backup | Restore | None",
                   db.session.scalars(select(model).where(model.job_id == job_id)).first())
        if row is not None:
            return row
    return None


def _status_from_rq(rq_status: str | None) -> str | None:
    """Jobs without a catalog row (verifications) speak the catalog's status words too."""
    return {"finished": "completed", "started": "running", "deferred": "queued",
            "scheduled": "queued", "stopped": "failed", "canceled": "failed"}.get(
        rq_status or "", rq_status)


def mark(row: Backup | Restore, status: str, **fields: Any) -> None:
    """Move a backup or restore to ``status`` and commit, stamping the matching timestamp."""
    row.status = status
    if isinstance(row, Restore) and status not in ACTIVE_STATUSES:
        row.active_slot = None  # the next restore may start
    if status == "running":
        row.started_at = utcnow()
    elif status in ("completed", "failed"):
        row.finished_at = utcnow()
        if row.started_at:
            delta = row.finished_at - row.started_at
            row.duration_ms = int(delta.total_seconds() * 1000)
    for key, value in fields.items():
        setattr(row, key, value)
    db.session.commit()
