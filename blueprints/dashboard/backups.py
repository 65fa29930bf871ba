"""The HTMX dashboard at /system/backup: create, watch, verify, download, restore and delete
backups.

Full pages for the browser, HTML fragments for htmx. Errors from the catalog go through
the app's error handlers, which render ``error.html`` as a bare alert for htmx requests;
the restore panel shows its refusals next to the form that was sent instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from rq.job import Job
from rq.registry import StartedJobRegistry
from werkzeug.wrappers import Response as BaseResponse

import catalog
import restores
from blueprints import dashboard_monitoring, dashboard_schedules
from blueprints.serializers import dry_run_json, job_json
from formatting import filesize, format_duration
from jobs.queues import VERIFY_QUEUE, queue, redis_connection
from models import ACTIVE_STATUSES, BACKUP_TYPES, VERIFY_LEVELS, Backup, utcnow

bp = Blueprint("dashboard", __name__)
bp.add_app_template_filter(filesize)
bp.add_app_template_filter(format_duration, "duration")

STALE_AFTER = timedelta(hours=24)
REFRESH_EVENT = "backups-changed"
RESTORES_EVENT = "restores-changed"
KIND_LABELS = {"full": "Full (schema + data)", "schema-only": "Schema only"}
LEVEL_LABELS = {"integrity": "Integrity check", "restore": "Test restore"}
MODE_LABELS = {"overwrite": "Over the database", "new-database": "Into a new database",
               "rehearsal": "Rehearsal"}
# A new backup gets its integrity check as a separate job, queued just after the backup
# completes; the list looks again for RECHECK_WINDOW in case it rendered in between.
RECHECK_WINDOW = timedelta(seconds=30)
bp.add_app_template_global(LEVEL_LABELS, "LEVEL_LABELS")
bp.add_app_template_global(MODE_LABELS, "MODE_LABELS")


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


@bp.app_template_filter("ago")
def ago(delta: timedelta) -> str:
    """A short, rounded-down age: 'just now', '5 min ago', '3 h ago', '2 d ago'."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


@bp.app_template_filter("signed")
def signed(number: int | None) -> str:
    """'+1,204', '0', '—' for unknown; negatives get a real minus sign (U+2212)."""
    if number is None:
        return "—"
    if number > 0:
        return f"+{number:,}"
    if number < 0:
        return f"\u2212{-number:,}"
    return "0"


@bp.app_template_filter("thousands")
def thousands(number: int | None) -> str:
    """'16,044'; '—' for unknown."""
    return "—" if number is None else f"{number:,}"


@bp.get("/")
def root() -> BaseResponse:
    return redirect(url_for("dashboard.index"))


@bp.get("/system/backup")
def index() -> str:
    kinds = {kind: KIND_LABELS.get(kind, kind) for kind in BACKUP_TYPES}
    return render_template("dashboard.html", kinds=kinds, **_backups_context(),
                           **_restores_context(), **dashboard_schedules.page_context(),
                           **dashboard_monitoring.page_context())


@bp.get("/system/backup/list")
def backups() -> str:
    """The summary and list fragment; the list reloads it on REFRESH_EVENT."""
    return render_template("partials/backups.html", **_backups_context())


@bp.post("/system/backup")
def create() -> str:
    kind = request.form.get("type", "")
    if kind not in BACKUP_TYPES:
        raise catalog.CatalogError(f"unknown backup type {kind!r}; use one of {BACKUP_TYPES}")
    catalog.create_backup(kind, compress="compress" in request.form)
    return render_template("partials/backups.html", clear_alerts=True, **_backups_context())


@bp.delete("/system/backup/<backup_id:backup_id>")
def delete(backup_id: str) -> str:
    catalog.delete_backup(backup_id, actor=current_user.display_name)
    return render_template("partials/backups.html", clear_alerts=True, **_backups_context())


@bp.get("/system/backup/<backup_id:backup_id>/progress")
def progress(backup_id: str) -> tuple[str, int, dict[str, str]] | str:
    """The polling progress bar; once the job has ended, a final fragment that stops
    polling and an HX-Trigger that makes the list reload with the final state."""
    backup = catalog.get_backup(backup_id)
    if not backup.is_active:
        html = render_template("partials/progress.html", backup=backup)
        return html, 200, {"HX-Trigger": REFRESH_EVENT}
    job, problem = _job_status(backup.job_id or backup.id)
    return render_template("partials/progress.html", backup=backup, job=job, problem=problem)


# Verification


@bp.post("/system/backup/<backup_id:backup_id>/verify")
def verify(backup_id: str) -> str:
    """Queue a verification; the card's verification block then polls the job."""
    level = request.form.get("level", "integrity")
    job_id = restores.start_verification(backup_id, level)
    return render_template("partials/verification.html", backup=catalog.get_backup(backup_id),
                           verifying=Verifying(job_id, level), clear_alerts=True)


@bp.get("/system/backup/<backup_id:backup_id>/verification/<job_id:job_id>")
def verification(backup_id: str, job_id: str) -> str:
    """The verification block while ``job_id`` runs; without polling once it has ended,
    showing the result the job stored on the backup."""
    backup = catalog.get_backup(backup_id)
    level = request.args.get("level", "")
    try:
        job, problem = job_json(catalog.job_status(job_id)), None
    except catalog.CatalogError as exc:  # 404: the job and its result have expired
        job, problem = None, None if exc.status == 404 else exc.message
    # While Redis is unreachable (a problem), keep polling and say why.
    active = problem is not None or (job is not None and job["status"] in ACTIVE_STATUSES)
    if not active:
        failed = job is not None and job["status"] == "failed"
        return render_template("partials/verification.html", backup=backup,
                               failed=(job.get("error") or "see the worker log") if failed
                               else None)
    verifying = Verifying(job_id, level if level in VERIFY_LEVELS else "integrity", job,
                          problem)
    return render_template("partials/verification.html", backup=backup, verifying=verifying)


# Restore: dry run first, then a confirmed restore


@bp.get("/system/backup/<backup_id:backup_id>/restore")
def restore_panel(backup_id: str) -> str | tuple[str, int, dict[str, str]]:
    """The dry-run analysis and the restore choices, swapped into #restore-panel."""
    target = request.args.get("target_database", "").strip() or None
    try:
        analysis = dry_run_json(restores.dry_run(backup_id, target))
    except catalog.CatalogError as exc:
        if target is None:
            raise  # opened from a card: the page's alert area
        return _inline_error(exc, "new-database")
    backup = catalog.get_backup(backup_id)
    protected = current_app.config["TARGET_DATABASE"]
    suggested = f"{protected[:40]}_restored_{backup.created_at:%Y%m%d_%H%M}"
    return render_template(
        "partials/restore_panel.html", backup=backup, analysis=analysis, new_database=target,
        protected=protected, suggested=suggested,
    )


@bp.get("/system/backup/restore-panel/closed")
def restore_panel_closed() -> str:
    """Nothing: the Close button swaps the panel's content for this."""
    return ""


@bp.post("/system/backup/<backup_id:backup_id>/restore")
def restore(backup_id: str) -> str | tuple[str, int, dict[str, str]]:
    """Start a restore chosen in the panel; a refusal is shown next to its form."""
    mode = request.form.get("mode", "")
    try:
        if mode == "new-database":
            name = request.form.get("target_database", "").strip()
            if not name:
                raise catalog.CatalogError("Name the new database to restore into.")
            started = restores.start_restore(backup_id, mode, name)
        elif mode == "overwrite":
            _require_typed_name(request.form.get("confirm_database", ""))
            started = restores.start_restore(backup_id, mode)
        elif mode == "rehearsal":
            started = restores.start_restore(backup_id, mode)
        else:
            raise catalog.CatalogError(f"unknown restore mode {mode!r}")
    except catalog.CatalogError as exc:
        return _inline_error(exc, mode if mode in ("overwrite", "rehearsal") else "new-database")
    return render_template("partials/restore_started.html", started=started,
                           **_restores_context())


def _require_typed_name(typed: str) -> None:
    protected = current_app.config["TARGET_DATABASE"]
    if typed.strip() != protected:
        raise catalog.CatalogError(
            f"To restore over {protected}, type its name exactly as shown "
            f"(you typed {typed.strip()!r}). Nothing was restored.",
            code="confirmation_mismatch",
        )


def _inline_error(exc: catalog.CatalogError, slot: str) -> tuple[str, int, dict[str, str]]:
    """The refusal, swapped into the error slot of the form that caused it."""
    message = exc.message.removeprefix("targetDatabase: ")  # the API's field name
    html = render_template("partials/inline_error.html", message=message)
    return html, exc.status, {"HX-Retarget": f"#restore-error-{slot}",
                              "HX-Reswap": "innerHTML"}


# Restores panel


@bp.get("/system/backup/restores")
def restores_list() -> str:
    """The restores panel; reloads itself on RESTORES_EVENT."""
    return render_template("partials/restores.html", **_restores_context())


@bp.get("/system/backup/restores/<restore_id:restore_id>/progress")
def restore_progress(restore_id: str) -> tuple[str, int, dict[str, str]] | str:
    """Like a backup's progress: polls while the restore runs, then triggers a reload of
    the restores panel (and of the backups, which may hold a new safety backup)."""
    row = restores.get_restore(restore_id)
    if not row.is_active:
        html = render_template("partials/restore_progress.html", restore=row)
        return html, 200, {"HX-Trigger": f"{RESTORES_EVENT}, {REFRESH_EVENT}"}
    job, problem = _job_status(row.job_id or row.id)
    return render_template("partials/restore_progress.html", restore=row, job=job,
                           problem=problem)


# Context for the templates


def _job_status(job_id: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return job_json(catalog.job_status(job_id)), None
    except catalog.CatalogError as exc:
        return None, exc.message


def _backups_context() -> dict[str, Any]:
    page = catalog.list_backups()
    summary = Summary(page.total, page.total_size, catalog.newest_good_backup())
    verifying = _active_verifications()
    return {"page": page, "summary": summary, "verifying": verifying,
            "recheck": _recheck_soon(page.backups, verifying)}


def _restores_context() -> dict[str, Any]:
    return {"restores": restores.list_restores(limit=10),
            "protected": current_app.config["TARGET_DATABASE"]}


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
