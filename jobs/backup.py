"""RQ entry point for one backup: catalog bookkeeping around the engine's writers
(``pgbackup.dump.run_dump_to``, ``pgbackup.incremental.run_incremental_to``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import current_app

from jobs.context import app_context
from jobs.progress import save_progress
from jobs.reconcile import settle
from pgbackup import (
    BackupError,
    DumpProgress,
    Manifest,
    ManifestError,
    ObjectStoreError,
    Zstd,
    backup_lock,
)
from pgbackup.dump import run_dump_to
from pgbackup.ids import artifact_name
from pgbackup.incremental import ChainBroken, run_incremental_to
from pgbackup.recoverykit import write_restore_file
from pgbackup.targets import Copy, Target
from services import activity, capture, copies, copy_retries, manifest_key, retention
from services.backups import mark, remove_files, storage, target_connection
from services.capture_slots import slot_name_for
from services.errors import CatalogError
from services.extensions import db
from services.failure_messages import describe_failure, estimated_backup_size
from services.formatting import filesize
from services.models import Backup, Schedule
from services.verification import start_verification


def run_backup(backup_id: str) -> dict[str, Any]:
    """Dump the target database to the backup's destinations; the job's only argument is
    the id."""
    with app_context():
        backup = db.session.get(Backup, backup_id)
        if backup is None or backup.status != "queued":
            raise RuntimeError(f"backup {backup_id} is not queued; refusing to run it twice")
        try:
            with backup_lock(target_connection(), backup.database):
                manifest = dump_into(backup)
        except Exception as exc:
            if backup.is_active:  # the lock was busy: dump_into never started
                mark(backup, "failed", error=str(exc))
            _record_on_schedule(backup)
            raise
        _record_on_schedule(backup)
        follow_up(backup)
        return {"backupId": backup.id, "size": manifest.size, "sha256": manifest.sha256}


def dump_into(backup: Backup, phase: str = "dump") -> Manifest:
    """Run the backup for a catalog row, moving it running -> completed or failed. A full
    backup starts a chain when change capture can run; an incremental continues the chain
    (or starts a new one with a full, saying why: services.capture)."""
    planned = copies.targets(backup)  # committed with "running": what to clean up after
    mark(backup, "running")
    head = capture.chain_head(backup.database) if backup.origin != "safety" else None
    try:
        results = _write(backup, [target for _, target in planned], head, phase)
        for (copy, _), result in zip(planned, results, strict=True):
            copies.record(copy, result)
        stored = [result.manifest for result in results if result.manifest is not None]
        if not stored:
            raise BackupError("no destination stored the backup: " + "; ".join(
                f"{result.target.name}: {result.error}" for result in results))
        manifest = stored[0]
        capture.record(backup, manifest)
        mark(
            backup, "completed", size=manifest.size, sha256=manifest.sha256,
            filename=manifest.artifact, tables=[asdict(table) for table in manifest.tables],
        )
        leave_restore_files(results)
    except Exception as exc:
        db.session.rollback()
        error = describe_failure(exc, storage().root, estimated_backup_size(backup.database))
        mark(backup, "failed", error=error)
        remove_files(backup)
        activity.record("backup.run", backup.id, outcome="failed", detail=backup.error,
                        actor="worker")
        raise
    capture.retire(head, backup)  # only now: the chain's changes are stored
    activity.record("backup.run", backup.id, detail=filesize(manifest.size), actor="worker")
    return manifest


def _write(backup: Backup, targets: list[Target], head: Backup | None,
           phase: str) -> list[Copy]:
    """The backup's artifact at every target: an incremental's changes, or pg_dump's."""
    if backup.type == "incremental":
        results = _incremental(backup, targets, head, phase)
        if results is not None:
            return results
    slot, note = capture.start_slot(backup) if backup.type == "full" else (None, None)
    if note:
        backup.capture_note = "; ".join(filter(None, (backup.capture_note, note)))
    return run_dump_to(
        target_connection(), targets, backup.id, backup.type, compress=backup.compress,
        checksums=current_app.config["TABLE_CHECKSUMS"], zstd=_zstd(),
        progress=lambda progress: report_dump_progress(progress, phase),
        manifest_key=manifest_key.key(),
        role_passwords=current_app.config["BACKUP_ROLE_PASSWORDS"], capture_slot=slot)


def _incremental(backup: Backup, targets: list[Target], head: Backup | None,
                 phase: str) -> list[Copy] | None:
    """The changes since the chain's head; None when no chain can continue: the backup is
    then a full that starts a new chain, with the reason in its capture_note."""
    reason = "no chain to continue: no completed backup with change capture yet"
    if head is not None:
        try:
            parent = capture.manifest_of(head)
        except (CatalogError, ManifestError, OSError, ObjectStoreError) as exc:
            message = exc.message if isinstance(exc, CatalogError) else str(exc)
            _new_chain(backup, f"the chain's last backup {head.id} cannot be read: {message}")
            return None
        try:
            backup.parent_id = head.id
            return run_incremental_to(
                target_connection(), targets, backup.id, parent, slot_name_for(backup.id),
                compress=backup.compress, checksums=current_app.config["TABLE_CHECKSUMS"],
                progress=lambda progress: save_progress(
                    phase=phase, bytesWritten=progress.bytes_written,
                    transactions=progress.transactions, changes=progress.changes),
                manifest_key=manifest_key.key(), zstd=_zstd())
        except ChainBroken as exc:
            reason = str(exc)
    _new_chain(backup, reason)
    return None


def _zstd() -> Zstd:
    """The compression settings (ZSTD_LEVEL, ZSTD_THREADS)."""
    return Zstd(current_app.config["ZSTD_LEVEL"], current_app.config["ZSTD_THREADS"])


def _new_chain(backup: Backup, reason: str) -> None:
    """No chain can continue: the incremental becomes a full that starts a new one."""
    backup.parent_id = None
    backup.type = "full"
    backup.filename = artifact_name(backup.id, backup.compress)
    backup.capture_note = f"started a new chain with a full backup: {reason}"


def leave_restore_files(results: list[Copy]) -> None:
    """The recovery kit's RESTORE file at each destination that stored the completed
    backup; one that cannot be written is logged, never fails the backup."""
    for result in results:
        if result.manifest is None:
            continue
        try:
            write_restore_file(result.target.storage)
        except Exception as exc:
            current_app.logger.warning("could not write the RESTORE file at %s: %s",
                                       result.target.name, exc)


def _record_on_schedule(backup: Backup) -> None:
    schedule = db.session.get(Schedule, backup.schedule_id) if backup.schedule_id else None
    if schedule is not None:
        schedule.last_status = backup.status
        db.session.commit()


def follow_up(backup: Backup) -> None:
    """Verify a new backup as its schedule says (integrity for manual and safety backups),
    then apply its schedule's retention; queue the retries of its failed copies. None may
    turn a completed backup into a failed job."""
    schedule = db.session.get(Schedule, backup.schedule_id) if backup.schedule_id else None
    level = schedule.verify if schedule else "integrity"
    try:
        copy_retries.retry_failed(backup)
        if level != "none":
            start_verification(backup.id, level, actor="worker")
        if schedule is not None:
            retention.apply(schedule_id=schedule.id)
    except CatalogError as exc:
        current_app.logger.warning("after backup %s: %s", backup.id, exc.message)


def report_dump_progress(progress: DumpProgress, phase: str = "dump") -> None:
    save_progress(
        phase=phase,
        bytesWritten=progress.bytes_written,
        currentTable=progress.current_table,
        tablesDone=progress.tables_done,
        tablesTotal=progress.tables_total,
    )


def on_backup_failure(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """RQ failure callback, also called for abandoned jobs whose worker died."""
    with app_context():
        backup = db.session.get(Backup, job.args[0]) if job.args else None
        if backup is not None and backup.is_active:
            settle(backup, f"{exc_type.__name__}: {exc}" if exc_type else "job failed")
