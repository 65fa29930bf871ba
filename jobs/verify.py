"""RQ entry point for verifying a backup: integrity always, a real test restore on request."""

from __future__ import annotations

from typing import Any

import activity
from catalog import storage, target_connection
from extensions import db
from jobs.context import app_context
from jobs.progress import save_progress, tag_job
from models import Backup, utcnow
from pgbackup import RestoreProgress, VerifyResult, check_integrity, read_manifest, scratch_restore


def run_verify(backup_id: str, level: str) -> dict[str, Any]:
    """Check ``backup_id`` at ``level`` and keep the result on the backup."""
    with app_context():
        tag_job(kind="verification", backupId=backup_id)
        backup = db.session.get(Backup, backup_id)
        if backup is None:
            raise RuntimeError(f"backup {backup_id} no longer exists")
        save_progress(phase="integrity")
        result = check_integrity(storage(), backup.id)
        if level == "restore" and result.is_valid:
            result = _with_test_restore(backup, result)
        backup.verification = "valid" if result.is_valid else "corrupted"
        backup.verification_result = result.to_dict()
        backup.verified_at = utcnow()
        db.session.commit()
        activity.record("backup.verified", backup.id, outcome="ok" if result.is_valid else
                        "failed", detail=f"{level}: {backup.verification}", actor="worker")
        return backup.verification_result


def _with_test_restore(backup: Backup, integrity: VerifyResult) -> VerifyResult:
    """Restore into a scratch database (always dropped) and compare with the manifest."""
    manifest = read_manifest(storage(), backup.id)
    with scratch_restore(target_connection(), storage(), manifest, "verify",
                         progress=report_restore_progress) as report:
        return VerifyResult(
            level="restore",
            checks=[*integrity.checks, report.restore_check, *report.checks],
            warnings=[*integrity.warnings, *report.warnings],
            checked_at=integrity.checked_at,
        )


def report_restore_progress(progress: RestoreProgress, phase: str = "restore") -> None:
    save_progress(
        phase=phase,
        itemsDone=progress.items_done,
        itemsTotal=progress.items_total,
        currentItem=progress.current_item,
    )
