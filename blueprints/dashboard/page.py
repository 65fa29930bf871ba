"""The dashboard's one page, composed of every panel's context."""

from __future__ import annotations

from flask import redirect, render_template, url_for
from werkzeug.wrappers import Response as BaseResponse

from blueprints.dashboard import backups, bp, chains, destinations, monitoring, restores, schedules
from blueprints.dashboard.labels import KIND_LABELS
from services.models import BACKUP_TYPES


@bp.get("/")
def root() -> BaseResponse:
    return redirect(url_for("dashboard.index"))


@bp.get("/system/backup")
def index() -> str:
    kinds = {kind: KIND_LABELS.get(kind, kind) for kind in BACKUP_TYPES}
    return render_template("pages/dashboard.html", kinds=kinds, **backups.page_context(),
                           **restores.page_context(), **schedules.page_context(),
                           **monitoring.page_context(), **destinations.page_context(),
                           **chains.page_context())
