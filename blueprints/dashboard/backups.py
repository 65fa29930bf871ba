"""The backups panel: create, watch, verify and delete backups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import render_template, request
from flask_login import current_user
from redis.exceptions import RedisError
from rq.job import Job
from rq.registry import StartedJobRegistry

from blueprints.api.serializers import job_json
from blueprints.dashboard import bp
from blueprints.dashboard.events import REFRESH_EVENT
from blueprints.dashboard.labels import LEVEL_LABELS
from jobs.queues import VERIFY_QUEUE, queue, redis_connection
from services import backups, copy_retries
from services.errors import CatalogError
from services.models import ACTIVE_STATUSES, BACKUP_TYPES, VERIFY_LEVELS, Backup, utcnow
from services.verification import start_verification

STALE_AFTER = timedelta(hours=24)
# A new backup gets its integrity check as a separate job, queued just after the backup
# completes; the list looks again for RECHECK_WINDOW in case it rendered in between.
RECHECK_WINDOW = timedelta(seconds=30)


@dataclass(frozen=True)
class Summary:
    """The figures above the backup list."""

    total: int
    total_size: int
    newest: Backup | None

    @property
    def newest_age(self) -> timedelta | None:
        if self.newest is None:
            return None
        return utcnow() - (self.newest.finished_at or self.newest.created_at)

    @property
    def stale(self) -> bool:
        """No completed backup, or the newest one is older than STALE_AFTER."""
        age = self.newest_age
        return age is None or age > STALE_AFTER


@dataclass(frozen=True)
class Verifying:
    """A verification job that is queued or running for one backup."""

    job_id: str
    level: str
    job: dict[str, Any] | None = None
    problem: str | None = None

    @property
    def label(self) -> str:
        return LEVEL_LABELS.get(self.level, self.level)


@bp.get("/system/backup/list", endpoint="backups")
def backup_list() -> str:
    """The summary and list fragment; the list reloads it on REFRESH_EVENT."""
    return render_template("partials/backups/list.html", **page_context())


@bp.post("/system/backup")
def create() -> str:
    kind = request.form.get("type", "")
    if kind not in BACKUP_TYPES:
        raise CatalogError(f"unknown backup type {kind!r}; use one of {BACKUP_TYPES}")
    backups.create_backup(kind, compress="compress" in request.form,
                          destinations=request.form.getlist("destinations") or None)
    return render_template("partials/backups/list.html", clear_alerts=True, **page_context())


@bp.delete("/system/backup/<backup_id:backup_id>")
def delete(backup_id: str) -> str:
    backups.delete_backup(backup_id, actor=current_user.display_name)
    return render_template("partials/backups/list.html", clear_alerts=True, **page_context())


@bp.post("/system/backup/<backup_id:backup_id>/copies/<destination>/retry")
def retry_copy(backup_id: str, destination: str) -> str:
    """Queue another attempt at a failed copy; the card shows it ``retrying``."""
    copy_retries.retry(backup_id, destination, actor=current_user.display_name)
    return render_template("partials/backups/list.html", clear_alerts=True, **page_context())


@bp.get("/system/backup/<backup_id:backup_id>/progress")
def progress(backup_id: str) -> tuple[str, int, dict[str, str]] | str:
    """The polling progress bar; once the job has ended, a final fragment that stops
    polling and an HX-Trigger that makes the list reload with the final state."""
    backup = backups.get_backup(backup_id)
    if not backup.is_active:
        html = render_template("partials/backups/progress.html", backup=backup)
        return html, 200, {"HX-Trigger": REFRESH_EVENT}
    job, problem = job_or_problem(backup.job_id or backup.id)
    return render_template("partials/backups/progress.html", backup=backup, job=job,
                           problem=problem)


@bp.post("/system/backup/<backup_id:backup_id>/verify")
def verify(backup_id: str) -> str:
    """Queue a verification; the card's verification block then polls the job."""
    level = request.form.get("level", "integrity")
    job_id = start_verification(backup_id, level)
    return render_template("partials/backups/verification.html",
                           backup=backups.get_backup(backup_id),
                           verifying=Verifying(job_id, level), clear_alerts=True)


@bp.get("/system/backup/<backup_id:backup_id>/verification/<job_id:job_id>")
def verification(backup_id: str, job_id: str) -> str:
    """The verification block while ``job_id`` runs; without polling once it has ended,
    showing the result the job stored on the backup."""
    backup = backups.get_backup(backup_id)
    level = request.args.get("level", "")
    try:
        job, problem = job_json(backups.job_status(job_id)), None
    except CatalogError as exc:  # 404: the job and its result have expired
        job, problem = None, None if exc.status == 404 else exc.message
    # While Redis is unreachable (a problem), keep polling and say why.
    active = problem is not None or (job is not None and job["status"] in ACTIVE_STATUSES)
    if not active:
        failed = job is not None and job["status"] == "failed"
        return render_template("partials/backups/verification.html", backup=backup,
                               failed=(job.get("error") or "see the worker log") if failed
                               else None)
    verifying = Verifying(job_id, level if level in VERIFY_LEVELS else "integrity", job,
                          problem)
    return render_template("partials/backups/verification.html", backup=backup, verifying=verifying)


def job_or_problem(job_id: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return job_json(backups.job_status(job_id)), None
    except CatalogError as exc:
        return None, exc.message


def page_context() -> dict[str, Any]:
    page = backups.list_backups()
    summary = Summary(page.total, page.total_size, backups.newest_good_backup())
    verifying = _active_verifications()
    return {"page": page, "summary": summary, "verifying": verifying,
            "recheck": _recheck_soon(page.backups, verifying)}


def _active_verifications() -> dict[str, Verifying]:
    """Backup id -> its queued or running verification job, read from the RQ queue
    (the catalog keeps no row for these jobs). Empty when Redis is unreachable."""
    try:
        verify_queue = queue(VERIFY_QUEUE)
        job_ids = [*verify_queue.get_job_ids(),
                   *StartedJobRegistry(queue=verify_queue).get_job_ids()]
        jobs = Job.fetch_many(job_ids, connection=redis_connection()) if job_ids else []
    except RedisError:
        return {}
    found: dict[str, Verifying] = {}
    for job in jobs:
        if job is not None and len(job.args) >= 2:
            backup_id, level = job.args[0], job.args[1]
            found.setdefault(backup_id, Verifying(job.id, level))
    return found


def _recheck_soon(backups: list[Backup], verifying: dict[str, Verifying]) -> bool:
    """True while a just-completed backup waits for its automatic integrity check to be
    queued; the list then polls itself every few seconds until it sees the job."""
    now = utcnow()
    return any(
        backup.status == "completed" and backup.verification == "unverified"
        and backup.origin != "safety" and backup.id not in verifying
        and backup.finished_at is not None and now - backup.finished_at < RECHECK_WINDOW
        for backup in backups
    )
