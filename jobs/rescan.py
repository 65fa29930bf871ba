"""RQ entry point for a rescan: rebuild the catalog from the manifests on destinations."""

from __future__ import annotations

from typing import Any

from jobs.context import app_context
from jobs.progress import save_progress, tag_job
from services import rescan


def run_rescan(destination: str | None, accept_foreign: bool) -> dict[str, Any]:
    """Rescan ``destination`` (None: every destination); the arguments are a name and a
    flag, never a key. The report is the job's result and its progress's ``report``, where
    ``GET /api/system/jobs/<jobId>`` shows it."""
    with app_context():
        tag_job(kind="rescan")
        save_progress(phase="rescan", destination=destination)
        report = rescan.rescan(destination, accept_foreign, actor="worker").as_json()
        save_progress(phase="done", destination=destination, report=report)
        return report
