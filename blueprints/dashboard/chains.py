"""The chains panel, under /system/backup/chains: the protected database's chains (a full
and its incrementals), the window each reaches, the point-in-time form (a dry run first,
in the restore panel) and the app's replication slots with the WAL they keep.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, render_template, request

from blueprints.api.serializers import dry_run_json
from blueprints.dashboard.restores import inline_error, parse_moment, render_panel
from services import capture_slots, chain_overview, restore_chains, restores
from services.capture_slots import SlotView
from services.errors import CatalogError

bp = Blueprint("chains", __name__, url_prefix="/system/backup/chains")


def utc_moment(moment: datetime) -> str:
    """A window's end to the millisecond, as the form's field takes it (UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


bp.add_app_template_filter(utc_moment)


def page_context() -> dict[str, Any]:
    chains = chain_overview.overview()
    slots, slots_problem = _slots()
    windows = [chain.window for chain in chains if chain.window is not None]
    return {"chains": chains, "slots": slots, "slots_problem": slots_problem,
            "reach": (min(w.earliest for w in windows), max(w.latest for w in windows))
            if windows else None,
            "capture_on": current_app.config["CHANGE_CAPTURE"]}


def _slots() -> tuple[list[SlotView], str | None]:
    """The slots, or why the database could not be asked."""
    try:
        return capture_slots.slots_report(), None
    except CatalogError as exc:
        return [], exc.message


@bp.get("")
def panel() -> str:
    """The panel; reloads itself when a backup changes (REFRESH_EVENT)."""
    return render_template("partials/chains/panel.html", **page_context())


@bp.get("/dry-run")
def dry_run() -> str | tuple[str, int, dict[str, str]]:
    """The restore panel for a point in time: the dry run of the chain that reaches it. A
    refusal (no moment, outside every window) goes next to the form that asked."""
    target = request.args.get("target_database", "").strip() or None
    try:
        moment = parse_moment(request.args.get("point_in_time", ""))
        if moment is None:
            raise CatalogError("Give the moment to restore to (UTC).",
                               code="invalid_point_in_time")
        backup = restore_chains.chain_for_moment(moment)[-1]  # the last link it reads
        analysis = dry_run_json(restores.dry_run(backup.id, target, moment))
    except CatalogError as exc:
        return inline_error(exc, "new-database" if target else "point-in-time")
    return render_panel(backup, analysis, target, moment)
