"""The dashboard's page: a shell with a navigation and one section at a time.

Each section has its own URL: Backups at /system/backup, the others at
/system/backup/section/<name> (/system/backup/schedules and /restores are their panels'
fragments). A direct load renders the whole page; a click in the navigation (an htmx
request) gets the section alone, swapped into #main, with the navigation marked out of
band. htmx's history restore (Back to an entry it has no copy of) gets the whole page.

A section's endpoint is its permission (services/permissions.py): the navigation lists
only the sections the user may open, and the guard answers 403 for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from blueprints.auth import can
from blueprints.dashboard import (
    backups,
    bp,
    destinations,
    monitoring,
    restores,
    schedules,
    users,
)
from blueprints.dashboard.labels import KIND_LABELS
from services import alerts, health
from services import backups as backup_service
from services import restores as restore_service
from services.models import ACTIVE_STATUSES, BACKUP_TYPES

sections = Blueprint("section", __name__, url_prefix="/system/backup/section")
# The responses differ by these request headers: a browser must not serve one for another.
VARY = ("HX-Request", "HX-History-Restore-Request")


@dataclass(frozen=True)
class Section:
    name: str
    label: str
    endpoint: str
    context: Callable[[], dict[str, Any]]

    @property
    def url(self) -> str:
        return url_for(self.endpoint)


def _backups() -> dict[str, Any]:
    kinds = {kind: KIND_LABELS.get(kind, kind) for kind in BACKUP_TYPES}
    return {"kinds": kinds, **backups.section_context()}


def _health() -> dict[str, Any]:
    return {"monitoring_charts": monitoring.charts_context()}


def _activity() -> dict[str, Any]:
    return {"monitoring_activity": monitoring.activity_context()}


def _settings() -> dict[str, Any]:
    return {**users.page_context(), **destinations.page_context(),
            "monitoring_channels": monitoring.channels_context()}


SECTIONS = (
    Section("backups", "Backups", "dashboard.index", _backups),
    Section("schedules", "Schedules", "dashboard.section.schedules", schedules.page_context),
    Section("restores", "Restores", "dashboard.section.restores", restores.page_context),
    Section("health", "Health", "dashboard.section.health", _health),
    Section("activity", "Activity", "dashboard.section.activity", _activity),
    Section("settings", "Settings", "dashboard.section.settings", _settings),
)


def nav_sections() -> list[Section]:
    """The sections the signed-in user may open, in the navigation's order."""
    return [section for section in SECTIONS if can(section.endpoint)]


bp.add_app_template_global(nav_sections)


def wants_fragment() -> bool:
    """An htmx request for the section alone; a direct load and htmx's history restore
    (which swaps the answer into <body>) need the whole page."""
    headers = request.headers
    return bool(headers.get("HX-Request")) and not headers.get("HX-History-Restore-Request")


def show(name: str) -> BaseResponse:
    """The section ``name``: the whole page, or the section alone (wants_fragment)."""
    section = next(section for section in SECTIONS if section.name == name)
    fragment = wants_fragment()
    template = "sections/frame.html" if fragment else "pages/dashboard.html"
    response = make_response(render_template(template, section=section, fragment=fragment,
                                             **section.context()))
    response.vary.update(VARY)
    return response


@bp.get("/")
def root() -> BaseResponse:
    return redirect(url_for("dashboard.index"))


@bp.get("/system/backup")
def index() -> BaseResponse:
    return show("backups")


for _section in SECTIONS[1:]:
    sections.add_url_rule(f"/{_section.name}", _section.name,
                          lambda name=_section.name: show(name))


@dataclass(frozen=True)
class Status:
    """The strip above every section: how the system is, and what runs now."""

    health: str
    label: str
    open_alerts: int
    running: int


@bp.get("/system/backup/status")
def status() -> str:
    """The status strip; it polls this every 30 s and when a job ends."""
    overall = health.overall(health.run_checks_or_report(datetime.now(UTC)))
    running = sum(backup_service.list_backups(status=state, per_page=0).total
                  for state in ACTIVE_STATUSES)
    # Restores run one at a time (services.restores): an active one is among the newest.
    running += sum(row.is_active for row in restore_service.list_restores(limit=5))
    view = Status(overall, monitoring.OVERALL_LABELS.get(overall, overall),
                  len(alerts.open_alerts()), running)
    return render_template("sections/status.html", status=view)
