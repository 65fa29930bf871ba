"""RQ entry point for one backup: catalog bookkeeping around ``pgbackup.run_dump``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rq import get_current_job

from catalog import mark, storage, target_connection
from extensions import db
from jobs.context import app_context
from models import Backup
from pgbackup import DumpProgress, run_dump


def run_backup(backup_id: str) -> dict[str, Any]:
    """Dump the target database into BACKUP_DIR; the job's only argument is the id."""
    with app_context():
        backup = db.session.get(Backup, backup_id)
        if backup is None or backup.status != "queued":
            raise RuntimeError(f"backup {backup_id} is not queued; refusing to run it twice")
        mark(backup, "running")
        try:
            manifest = run_dump(
                target_connection(), storage(), backup.id, backup.type,
                compress=backup.compress, progress=_report_progress,
            )
            mark(
                backup, "completed", size=manifest.size, sha256=manifest.sha256,
                filename=manifest.artifact, tables=[asdict(table) for table in manifest.tables],
            )
        except Exception as exc:
            db.session.rollback()
            mark(backup, "failed", error=str(exc) or type(exc).__name__)
            raise
        return {"backupId": backup.id, "size": manifest.size, "sha256": manifest.sha256}


def _report_progress(progress: DumpProgress) -> None:
    job = get_current_job()
    if job is None:
        return
    job.meta["progress"] = {
        "bytesWritten": progress.bytes_written,
        "currentTable": progress.current_table,
        "tablesDone": progress.tables_done,
        "tablesTotal": progress.tables_total,
    }
    job.save_meta()


def on_backup_failure(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """RQ failure callback, also called for abandoned jobs whose worker died."""
    with app_context():
        backup = db.session.get(Backup, job.args[0]) if job.args else None
        if backup is not None and backup.is_active:
            reason = f"{exc_type.__name__}: {exc}" if exc_type else "job failed"
            mark(backup, "failed", error=f"the backup job did not finish ({reason})")
            if backup.filename:
                storage().remove_partial_for(backup.filename)
