"""The HTMX dashboard at /system/backup: create, watch, download and delete backups.

Full pages for the browser, HTML fragments for htmx. Errors from the catalog go through
the app's error handlers, which render ``error.html`` as a bare alert for htmx requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

import catalog
from formatting import filesize
from models import BACKUP_TYPES, Backup, utcnow

bp = Blueprint("dashboard", __name__)
bp.add_app_template_filter(filesize)

STALE_AFTER = timedelta(hours=24)
REFRESH_EVENT = "backups-changed"
KIND_LABELS = {"full": "Full (schema + data)", "schema-only": "Schema only"}


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


@bp.get("/")
def root() -> BaseResponse:
    return redirect(url_for("dashboard.index"))


@bp.get("/system/backup")
def index() -> str:
    kinds = {kind: KIND_LABELS.get(kind, kind) for kind in BACKUP_TYPES}
    return render_template("dashboard.html", kinds=kinds, **_backups_context())


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


@bp.delete("/system/backup/<backup_id>")
def delete(backup_id: str) -> str:
    catalog.delete_backup(backup_id)
    return render_template("partials/backups.html", clear_alerts=True, **_backups_context())


@bp.get("/system/backup/<backup_id>/progress")
def progress(backup_id: str) -> tuple[str, int, dict[str, str]] | str:
    """The polling progress bar; once the job has ended, a final fragment that stops
    polling and an HX-Trigger that makes the list reload with the final state."""
    backup = catalog.get_backup(backup_id)
    if not backup.is_active:
        html = render_template("partials/progress.html", backup=backup)
        return html, 200, {"HX-Trigger": REFRESH_EVENT}
    try:
        job, problem = catalog.job_status(backup.job_id or backup.id), None
    except catalog.CatalogError as exc:
        job, problem = None, exc.message
    return render_template("partials/progress.html", backup=backup, job=job, problem=problem)


def _backups_context() -> dict[str, Any]:
    page = catalog.list_backups()
    summary = Summary(page.total, page.total_size, catalog.newest_good_backup())
    return {"page": page, "summary": summary}
