"""Verification requests: validated here, carried out by RQ jobs (jobs.verify)."""

from __future__ import annotations

import secrets

from jobs.queues import VERIFY_QUEUE
from services import activity
from services.backups import completed_backup, enqueue
from services.errors import CatalogError
from services.models import VERIFY_LEVELS


def start_verification(backup_id: str, level: str, actor: str | None = None) -> str:
    """Queue a verification of ``backup_id`` at ``level``; returns the job id."""
    if level not in VERIFY_LEVELS:
        raise CatalogError(f"unknown level {level!r}: use one of {', '.join(VERIFY_LEVELS)}")
    backup = completed_backup(backup_id, restoring=False)
    job_id = f"verify-{level}-{backup.id}-{secrets.token_hex(3)}"
    enqueue(VERIFY_QUEUE, "jobs.verify.run_verify", job_id,
            f"{level} verification of {backup.id}", backup.id, level,
            consequence="nothing was started")
    activity.record("backup.verify", backup.id, detail=f"level {level}, job {job_id}",
                    actor=actor)
    return job_id
