"""RQ entry point for verifying a backup: integrity always, a real test restore on request."""

from __future__ import annotations

import logging
from typing import Any

from rq import get_current_job

from jobs.context import app_context
from jobs.progress import save_progress, tag_job
from pgbackup import (
    RestoreProgress,
    Storage,
    VerifyResult,
    read_manifest,
    scratch_name,
    scratch_restore,
)
from services import activity, copies
from services.artifact_presence import check_stored, failed_check, state_of
from services.backups import target_connection
from services.claims import claim_database, drop_claimed
from services.extensions import db
from services.json_shapes import verification_record
from services.models import Backup, utcnow

log = logging.getLogger(__name__)


def run_verify(backup_id: str, level: str) -> dict[str, Any]:
    """Check ``backup_id`` at ``level`` and keep the result on the backup."""
    with app_context():
        tag_job(kind="verification", backupId=backup_id)
        backup = db.session.get(Backup, backup_id)
        if backup is None:
            raise RuntimeError(f"backup {backup_id} no longer exists")
        save_progress(phase="integrity")
        source = copies.source(backup, decrypting=level == "restore")
        result = check_stored(backup, source)
        if level == "restore" and result.is_valid:
            job_id = get_current_job().id
            try:
                result = _with_test_restore(backup, source.storage, result, job_id)
            finally:
                for sentence in drop_claimed(job_id):
                    log.warning("verification of %s: %s", backup.id, sentence)
        failed = failed_check(backup)
        backup.verification = ("valid" if result.is_valid else state_of(failed) if failed
                               else "corrupted")
        backup.verification_result = verification_record(result)
        backup.verified_at = utcnow()
        db.session.commit()
        activity.record("backup.verified", backup.id, outcome="ok" if result.is_valid else
                        "failed", detail=f"{level}: {backup.verification}", actor="worker")
        return backup.verification_result


def _with_test_restore(backup: Backup, store: Storage, integrity: VerifyResult,
                       job_id: str) -> VerifyResult:
    """Restore the copy in ``store`` into a scratch database (always dropped) and compare
    with the manifest."""
    manifest = read_manifest(store, backup.id)
    name = claim_database(job_id, scratch_name("verify"))
    with scratch_restore(target_connection(), store, manifest, name,
                         progress=report_restore_progress,
                         identities=copies.identities()) as report:
        return VerifyResult(
            level="restore",
            checks=[*integrity.checks, report.restore_check, *report.checks],
            warnings=[*integrity.warnings, *report.warnings],
            checked_at=integrity.checked_at,
        )


def on_verify_failure(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """RQ failure callback, also called for abandoned jobs whose worker died: drop the
    scratch database the job may have left."""
    with app_context():
        for sentence in drop_claimed(job.id):
            log.warning("verification job %s: %s", job.id, sentence)


def report_restore_progress(progress: RestoreProgress, phase: str = "restore") -> None:
    save_progress(
        phase=phase,
        itemsDone=progress.items_done,
        itemsTotal=progress.items_total,
        currentItem=progress.current_item,
    )
