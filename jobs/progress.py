"""Progress in the current RQ job's meta, where the API and the dashboard read it."""

from __future__ import annotations

from typing import Any

from rq import get_current_job


def save_progress(**fields: Any) -> None:
    """Replace the job's progress; the engine already calls back at most twice a second."""
    job = get_current_job()
    if job is None:
        return
    job.meta["progress"] = fields
    job.save_meta()


def tag_job(**fields: Any) -> None:
    """Describe the job (kind, backupId) for jobs that have no catalog row of their own."""
    job = get_current_job()
    if job is None:
        return
    job.meta.update(fields)
    job.save_meta()
