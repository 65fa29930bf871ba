"""The dashboard's destinations panel, under /system/backup/destinations: where backups
go, how each destination is doing, a probe, and a rescan that rebuilds the catalog from
the manifests found there. Destinations are added and changed through the API
(docs/destinations.md); the dashboard never shows a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user

from blueprints.api.serializers import job_json
from services import backups, destination_health, destinations, rescan
from services.destination_health import DestinationHealth
from services.errors import CatalogError
from services.models import ACTIVE_STATUSES, Destination

bp = Blueprint("destinations", __name__, url_prefix="/system/backup/destinations")


@dataclass(frozen=True)
class DestinationView:
    destination: Destination
    health: DestinationHealth

    @property
    def where(self) -> str:
        settings = self.destination.settings or {}
        if self.destination.type == "local":
            return str(settings.get("path", ""))
        prefix = settings.get("prefix") or ""
        return f"s3://{settings.get('bucket', '')}/{prefix}".rstrip("/")

    @property
    def retention(self) -> str | None:
        days = self.destination.retention_days
        return f"{days} days" if days else None


def destination_names() -> list[str]:
    """Every destination's name, for the new-backup and schedule forms."""
    return [destination.name for destination in destinations.list_destinations()]


bp.add_app_template_global(destination_names)


def default_destinations() -> list[str]:
    return list(current_app.config["DEFAULT_DESTINATIONS"])


bp.add_app_template_global(default_destinations)


def page_context() -> dict[str, Any]:
    return {"destination_views": _views()}


def _views() -> list[DestinationView]:
    rows = destinations.list_destinations()
    health = destination_health.health_of([row.name for row in rows])
    return [DestinationView(row, health[row.name]) for row in rows]


@bp.get("")
def panel() -> str:
    return render_template("partials/destinations/panel.html", destination_views=_views())


@bp.post("/<int:destination_id>/test")
def probe(destination_id: int) -> str:
    """Write, read back and delete a probe object; the sentence goes next to the button."""
    destination = (destinations.builtin() if destination_id == 0
                   else destinations.get_destination(destination_id))
    result = destinations.probe(destination)
    return render_template("partials/destinations/probe.html", result=result,
                           destination=destination)


@bp.post("/rescan")
def start_rescan() -> str:
    """Queue a rescan of one destination (or of all); the report polls itself."""
    name = request.form.get("destination") or None
    accept_foreign = request.form.get("acceptForeign") == "on"
    job_id = rescan.start_rescan(name, accept_foreign, actor=current_user.display_name)
    return render_template("partials/destinations/rescan.html", job_id=job_id, job=None)


@bp.get("/rescan/<job_id:job_id>")
def rescan_status(job_id: str) -> str:
    try:
        job = job_json(backups.job_status(job_id))
    except CatalogError as exc:
        return render_template("partials/destinations/rescan.html", job_id=job_id, job=None,
                               problem=exc.message)
    return render_template("partials/destinations/rescan.html", job_id=job_id, job=job,
                           running=job["status"] in ACTIVE_STATUSES)
