"""RQ entry point that makes a backup's failed copy again, from a copy that was stored.

Queued by services.copies (after a backup with failed optional copies, or on request),
with RQ's ``Retry``. Its arguments are the backup's id and the destination's name, never
a secret. Every failed attempt, an abandoned one included, is recorded by the failure
callback: ``retrying`` while RQ will try again, else ``failed`` with the error.
"""

from __future__ import annotations

from typing import Any

from jobs.context import app_context
from jobs.progress import tag_job
from services import copy_retries
from services.extensions import db


class CopyFailed(Exception):
    """One attempt failed; the message is the sentence the copy shows."""


def run_copy(backup_id: str, destination: str) -> dict[str, Any]:
    with app_context():
        tag_job(kind="copy", backupId=backup_id)
        try:
            copy = copy_retries.copy_again(backup_id, destination)
        except Exception as exc:
            db.session.rollback()
            raise CopyFailed(_sentence(exc)) from exc
        if copy is None:
            return {"backupId": backup_id, "destination": destination, "copied": False}
        return {"backupId": backup_id, "destination": destination, "copied": True,
                "size": copy.size, "sha256": copy.sha256}


def _sentence(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def on_copy_failure(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """RQ failure callback, also called for abandoned jobs whose worker died: called before
    RQ decides on a retry, so ``retries_left`` says whether one follows."""
    if not job.args:
        return
    if isinstance(exc, CopyFailed):
        error = str(exc)
    elif exc_type is not None and exc_type.__name__ == "AbandonedJobError":
        error = "the copy job did not finish: its worker died"
    else:
        error = f"{exc_type.__name__}: {exc}" if exc_type else "the copy job failed"
    backup_id, destination = job.args[:2]
    with app_context():
        copy_retries.settle_failed(backup_id, destination, error, retrying=bool(job.retries_left))
