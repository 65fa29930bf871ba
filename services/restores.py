"""Restore requests (and their dry runs): validated here, carried out by RQ jobs.

Every refusal is a CatalogError with a sentence for the user; nothing is queued or
recorded unless the whole request is acceptable.

Restoring an incremental restores its chain (services.restore_chains); so does a restore
to a point in time, of the chain a backup belongs to or of the newest chain reaching the
moment. The restore row then names the last backup of the chain it reads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, has_request_context
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from jobs.queues import RESTORE_QUEUE
from pgbackup import (
    Check,
    DryRunError,
    DryRunReport,
    ObjectStoreError,
    VerifyResult,
    analyze_restore,
    database_exists,
    new_backup_id,
    read_manifest,
    validate_database_name,
)
from pgbackup.dryrun import RestoreMode, analyze_chain_restore
from pgbackup.restore_jobs import Parallelism
from services import activity, copies, restore_chains
from services.artifact_presence import check_stored
from services.backups import (
    admitted,
    commit_then_enqueue,
    completed_backup,
    storage,
    target_connection,
)
from services.errors import CatalogError
from services.extensions import db
from services.json_shapes import iso
from services.models import ACTIVE_STATUSES, Backup, Restore
from services.permissions import ADMIN, at_least


@dataclass(frozen=True)
class DryRun:
    """A dry run: the backup's integrity check, then the analysis unless that failed.
    Shaped as JSON by blueprints.api.serializers.dry_run_json."""

    integrity: VerifyResult
    report: DryRunReport | None  # None: the backup failed its integrity check

    @property
    def can_restore(self) -> bool:
        return self.report is not None and self.report.can_restore

    @property
    def errors(self) -> list[str]:
        """Why the restore cannot go ahead; a corrupted backup's integrity failures."""
        if self.report is not None:
            return self.report.errors
        failed = [f"{c.name}: {c.detail}" for c in self.integrity.checks if not c.ok]
        return [f"the backup failed its integrity check ({'; '.join(failed)})"]

    @property
    def warnings(self) -> list[str]:
        return self.report.warnings if self.report is not None else []


def dry_run(backup_id: str | None, target_database: str | None = None,
            point_in_time: datetime | None = None) -> DryRun:
    """The read-only analysis of restoring ``backup_id`` (over the protected database, or
    into ``target_database`` when given); with ``point_in_time`` (aware), of restoring
    its chain (``backup_id`` given) or the newest chain reaching it to that moment."""
    backup = completed_backup(backup_id) if backup_id else None
    if target_database is not None:
        _checked_name(target_database)
    rows = _chain(backup, point_in_time) or [_asked(backup)]
    links = [(row, copies.source(row)) for row in rows]  # each: its first readable copy
    integrity = _integrity([check_stored(row, source) for row, source in links], rows)
    if not integrity.is_valid:
        return DryRun(integrity, None)  # the integrity failures are the whole answer
    stored = [(source.storage, read_manifest(source.storage, row.id)) for row, source in links]
    mode: RestoreMode = "new-database" if target_database else "overwrite"
    free = shutil.disk_usage(storage().root).free
    try:
        if restore_chains.is_chained(rows[-1], point_in_time):
            report = analyze_chain_restore(
                target_connection(), stored, point_in_time, mode=mode,
                new_database=target_database, backup_dir_free_bytes=free,
                past_restore_rate=past_restore_rate(), identities=copies.identities())
        else:
            report = analyze_restore(
                target_connection(), *stored[0], mode=mode, new_database=target_database,
                backup_dir_free_bytes=free, past_restore_rate=past_restore_rate(),
                identities=copies.identities(), parallel=restore_parallelism())
    except DryRunError as exc:
        raise CatalogError(f"cannot analyse the target: {exc}", status=503,
                           code="target_unavailable") from None
    return DryRun(integrity, report)


def restore_parallelism() -> Parallelism:
    """What RESTORE_JOBS and RESTORE_TEMP_DIR allow a restore of one backup (a chain's
    full restores serially): see pgbackup.restore_jobs."""
    config = current_app.config
    return Parallelism(jobs=config["RESTORE_JOBS"], temp_dir=config["RESTORE_TEMP_DIR"])


def _asked(backup: Backup | None) -> Backup:
    if backup is None:
        raise CatalogError("name the backup to restore (backupId), or a pointInTime",
                           code="invalid_request")
    return backup


def _chain(backup: Backup | None, moment: datetime | None) -> list[Backup] | None:
    """The chain a restore reads (the full first), None for a single backup."""
    if moment is not None:
        return restore_chains.chain_for_moment(moment, backup)
    if _asked(backup).type == "incremental":
        return restore_chains.chain_to(_asked(backup))
    return None


def _integrity(results: list[VerifyResult], rows: list[Backup]) -> VerifyResult:
    """One integrity result for the backups a restore reads: a chain's checks are named
    with their backup's id."""
    if len(results) == 1:
        return results[0]
    return VerifyResult(
        level=results[-1].level,
        checks=[Check(f"{check.name} ({row.id})", check.ok, check.detail)
                for result, row in zip(results, rows, strict=True) for check in result.checks],
        warnings=[warning for result in results for warning in result.warnings],
        checked_at=results[-1].checked_at)


def start_restore(backup_id: str | None, mode: str, target_database: str | None = None,
                  create_roles: bool = False,
                  point_in_time: datetime | None = None) -> Restore:
    """Record and queue a restore after every check that can be made up front;
    ``create_roles`` first creates the missing roles from the backup's saved ones;
    ``point_in_time`` (aware) restores a chain to that moment (see :func:`dry_run`)."""
    with admitted("nothing was started"):
        restore = _record_restore(backup_id, mode, target_database, create_roles,
                                  point_in_time)
    creating = ", creating missing roles" if create_roles else ""
    moment = f" to {iso(restore.point_in_time)}" if restore.point_in_time else ""
    activity.record("restore.start", restore.id, detail=f"{mode} of {restore.backup_id}"
                    f"{moment} into {restore.target_database}{creating}")
    return restore


def _record_restore(backup_id: str | None, mode: str, target_database: str | None,
                    create_roles: bool, point_in_time: datetime | None) -> Restore:
    asked = completed_backup(backup_id) if backup_id else None
    rows = _chain(asked, point_in_time) or [_asked(asked)]
    backup = rows[-1]  # of a chain: its last link read
    protected = current_app.config["TARGET_DATABASE"]
    _refuse_concurrent_restore()
    if create_roles:
        _require_saved_roles(rows[0])  # a chain's roles are its full's
    if mode == "overwrite":
        _require_admin("restoring over the protected database")
        target_database = protected
        _refuse_active_backup(protected)
    elif mode == "new-database":
        target_database = _checked_name(target_database or "")
        if database_exists(target_connection(), target_database):
            raise CatalogError(
                f"database {target_database!r} already exists; a restore into a new "
                "database never touches an existing one: pick another name",
                status=409, code="database_exists",
            )
    elif mode == "rehearsal":
        target_database = "scratch database (dropped afterwards)"
    else:
        raise CatalogError(f"unknown restore mode {mode!r}", code="invalid_mode")
    moment = point_in_time.astimezone(UTC).replace(tzinfo=None) if point_in_time else None
    restore = Restore(id=_new_restore_id(), backup_id=backup.id, mode=mode,
                      target_database=target_database, active_slot="restore",
                      point_in_time=moment)
    restore.job_id = restore.id
    _take_restore_slot(restore)
    at = f" at {iso(moment)}" if moment else ""
    commit_then_enqueue(restore, RESTORE_QUEUE, "jobs.restore.run_restore", restore.job_id,
                        f"{mode} restore of {backup.id}{at} into {target_database}",
                        restore.id, create_roles, consequence="nothing was started")
    return restore


def _require_saved_roles(backup: Backup) -> None:
    """Roles are created server-wide, by admins only, from the roles the backup saved."""
    _require_admin("creating roles on the server (createRoles)")
    try:
        saved = read_manifest(copies.source(backup).storage, backup.id).globals
    except (OSError, ValueError, ObjectStoreError) as exc:  # ManifestError is a ValueError
        raise CatalogError(f"cannot read the manifest of backup {backup.id}: {exc}",
                           status=409, code="backup_missing") from None
    if saved is None:
        raise CatalogError(
            f"backup {backup.id} saved no roles (it was taken before roles were saved), so "
            "createRoles cannot create them: create them by hand, or restore without "
            "createRoles (without owners and grants)", status=409, code="no_saved_roles")


def _require_admin(action: str) -> None:
    """Inside a request, only admins may; the CLI runs on the server as its admin."""
    if has_request_context() and not at_least(current_user.role, ADMIN):
        raise CatalogError(f"{action} needs the admin role (yours: {current_user.role})",
                           status=403, code="forbidden")


def _checked_name(name: str) -> str:
    try:
        return validate_database_name(name)
    except ValueError as exc:
        raise CatalogError(f"targetDatabase: {exc}", code="invalid_database_name") from None


def _refuse_concurrent_restore() -> None:
    active = db.session.scalars(
        select(Restore).where(Restore.status.in_(ACTIVE_STATUSES))).first()
    if active is not None:
        raise CatalogError(
            f"restore {active.id} is {active.status}; restores run one at a time",
            status=409, code="restore_running",
        )


def _take_restore_slot(restore: Restore) -> None:
    """Insert the active restore; the unique ``active_slot`` lets exactly one of several
    racing requests through, even when all passed the check above at the same time."""
    db.session.add(restore)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise CatalogError("another restore has just started; restores run one at a time",
                           status=409, code="restore_running") from None


def _refuse_active_backup(database: str) -> None:
    active = db.session.scalars(select(Backup).where(
        Backup.status.in_(ACTIVE_STATUSES), Backup.database == database)).first()
    if active is not None:
        raise CatalogError(
            f"backup {active.id} of {database} is {active.status}; restore over the "
            "database once it has finished", status=409, code="backup_running",
        )


def _new_restore_id() -> str:
    restore_id = "restore-" + new_backup_id().removeprefix("backup-")
    while db.session.get(Restore, restore_id) is not None:
        restore_id = "restore-" + new_backup_id().removeprefix("backup-")
    return restore_id


def past_restore_rate() -> float | None:
    """Artifact bytes per second over past completed restores, for the dry run's estimate."""
    size, millis = db.session.execute(
        select(func.sum(Backup.size), func.sum(Restore.duration_ms))
        .join(Backup, Restore.backup_id == Backup.id)
        .where(Restore.status == "completed", Restore.mode != "overwrite")
    ).one()
    return size / (millis / 1000) if size and millis else None


def get_restore(restore_id: str) -> Restore:
    restore = db.session.get(Restore, restore_id)
    if restore is None:
        raise CatalogError(f"no restore with id {restore_id!r}", status=404, code="not_found")
    return restore


def list_restores(limit: int = 50) -> list[Restore]:
    return list(db.session.scalars(
        select(Restore).order_by(Restore.created_at.desc()).limit(limit)))


def restores_of(backup_id: str, limit: int = 20) -> list[Restore]:
    """The newest restores that read ``backup_id`` (the last backup of a chain they read)."""
    return list(db.session.scalars(
        select(Restore).where(Restore.backup_id == backup_id)
        .order_by(Restore.created_at.desc()).limit(limit)))
