"""The dashboard's schedules panel and retention preview, under /system/backup/schedules.

HTML fragments for htmx, like ``dashboard.py``. Every schedule change answers with the
HX-Trigger ``schedules-changed``, on which the retention preview reloads itself (it also
reloads on ``backups-changed``). A refused form comes back with the user's input, the
catalog's message next to it and a 4xx status; HX-Retarget puts it where the form was.
The dashboard page includes the panel with the data of :func:`page_context`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from flask import Blueprint, render_template, request
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from blueprints.api.schemas import CreateScheduleRequest
from blueprints.api.serializers import iso
from blueprints.errors import describe_validation_error
from services import capture_health, retention, schedules
from services.errors import CatalogError
from services.models import ACTIVE_STATUSES, Schedule, ScheduleRun

bp = Blueprint("schedules", __name__, url_prefix="/system/backup/schedules")

SCHEDULES_EVENT = "schedules-changed"
BACKUPS_EVENT = "backups-changed"  # dashboard.REFRESH_EVENT: the backup list reloads
TYPE_LABELS = {"full": "Full", "incremental": "Incremental (changes since the last backup)",
               "schema-only": "Schema only"}
FREQUENCY_LABELS = {"hourly": "Hourly", "daily": "Daily", "weekly": "Weekly",
                    "monthly": "Monthly", "cron": "Cron expression"}
VERIFY_LABELS = {"integrity": "Integrity", "restore": "Test restore", "none": "None"}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# The form's fields are the API's names; which frequencies use the optional ones.
USED_BY = {"time": ("hourly", "daily", "weekly", "monthly"), "dayOfWeek": ("weekly",),
           "dayOfMonth": ("monthly",), "cron": ("cron",)}
NEW_FORM = {"name": "", "type": "full", "frequency": "daily", "time": "02:00",
            "dayOfWeek": "0", "dayOfMonth": "1", "cron": "", "timezone": "UTC",
            "retention": "7", "keepAtLeast": "1", "verify": "integrity", "enabled": True,
            "destinations": []}
TEXT_FIELDS = tuple(name for name in NEW_FORM if name not in ("enabled", "destinations"))
# The shop guide's defaults: fulls kept 30 days, incrementals (changes since the last
# backup) kept 7.
PRESETS = {
    "nightly-full": {**NEW_FORM, "name": "nightly full", "retention": "30"},
    "hourly-incremental": {**NEW_FORM, "name": "hourly incremental", "type": "incremental",
                           "frequency": "hourly", "time": "00:15", "retention": "7"},
}
# The form's choices, for the macros in partials/schedules_macros.html (imported without
# the template's context).
bp.add_app_template_global(capture_health.capture_problem, "capture_problem")
bp.add_app_template_global({"type": TYPE_LABELS, "frequency": FREQUENCY_LABELS,
                            "verify": VERIFY_LABELS, "weekdays": WEEKDAYS},
                           "SCHEDULE_CHOICES")


@dataclass(frozen=True)
class FormError:
    """A refusal shown next to the form: the catalog's message and the field it names."""

    message: str
    field: str | None


# The dashboard page


def page_context() -> dict[str, Any]:
    """What ``partials/schedules_panel.html``, included by dashboard.html, needs: for the
    page's view to pass with its own."""
    return {"schedules_panel": {"schedule_views": _views(schedules.list_schedules()),
                                "form": NEW_FORM, "zones": _zones(), **_retention_context()}}


# Panel, list, one card


@bp.get("")
def schedule_list() -> str:
    return _render_list()


@bp.get("/<id:schedule_id>")
def card(schedule_id: int) -> str:
    """A schedule's card (Cancel in the edit form swaps this back)."""
    return _render_card(schedules.get_schedule(schedule_id))


@bp.get("/<id:schedule_id>/last-run")
def last_run(schedule_id: int) -> str | tuple[str, int, dict[str, str]]:
    """The card's last-run block; polls itself while the schedule's backup is active.
    Nothing (which ends the polling) once the schedule was deleted elsewhere. The block
    that ends the polling also makes the retention preview (and any panel showing
    backups) reload: the Schedules section has no backup progress to say so."""
    schedule = schedules.find_schedule(schedule_id)
    if schedule is None:
        return ""
    [view] = _views([schedule])
    html = render_template("partials/schedules/last_run.html", view=view)
    return html if view["busy"] else (html, 200, {"HX-Trigger": BACKUPS_EVENT})


# Create, edit, enable, delete, run now


@bp.post("")
def create() -> tuple[str, int, dict[str, str]]:
    values = _form_values(request.form)
    try:
        schedules.create_schedule(_fields(values))
    except CatalogError as exc:  # create_schedule rolled back
        html = render_template("partials/schedules/form.html", form=values,
                               error=_form_error(exc))
        return html, exc.status, _retarget("#schedule-form-new")
    html = _render_list(fresh_form=True, clear_alerts=True)
    return html, 200, {"HX-Trigger": SCHEDULES_EVENT}


@bp.get("/new/<preset>")
def preset_form(preset: str) -> str:
    """The create form filled in with one of PRESETS (an unknown one: the empty form)."""
    return render_template("partials/schedules/form.html",
                           form=PRESETS.get(preset, NEW_FORM), error=None)


@bp.get("/<id:schedule_id>/edit")
def edit(schedule_id: int) -> str:
    schedule = schedules.get_schedule(schedule_id)
    return render_template("partials/schedules/edit.html", schedule=schedule,
                           form=_values_of(schedule), error=None)


@bp.put("/<id:schedule_id>")
def update(schedule_id: int) -> tuple[str, int, dict[str, str]]:
    schedule = schedules.get_schedule(schedule_id)
    values = _form_values(request.form)
    try:
        schedule = schedules.update_schedule(schedule_id, _fields(values))
    except CatalogError as exc:  # update_schedule rolled back its changes to the row
        html = render_template("partials/schedules/edit.html", schedule=schedule, form=values,
                               error=_form_error(exc))
        return html, exc.status, _retarget(f"#schedule-{schedule_id}")
    return _render_card(schedule, clear_alerts=True), 200, {"HX-Trigger": SCHEDULES_EVENT}


@bp.put("/<id:schedule_id>/enabled")
def set_enabled(schedule_id: int) -> tuple[str, int, dict[str, str]]:
    """The card's switch sends the state it asks for, so a stale page cannot flip it back."""
    wanted = request.form.get("enabled", "")
    schedule = schedules.get_schedule(schedule_id)
    try:
        if wanted not in ("true", "false"):
            raise CatalogError(f"enabled: {wanted!r} is neither true nor false")
        schedule = schedules.update_schedule(schedule_id, {"enabled": wanted == "true"})
    except CatalogError as exc:
        return _card_error(schedule_id, exc)
    return _render_card(schedule, clear_alerts=True), 200, {"HX-Trigger": SCHEDULES_EVENT}


@bp.delete("/<id:schedule_id>")
def delete(schedule_id: int) -> tuple[str, int, dict[str, str]]:
    """The schedule goes; its backups stay until deleted by hand."""
    schedules.delete_schedule(schedule_id)
    return _render_list(clear_alerts=True), 200, {"HX-Trigger": SCHEDULES_EVENT}


@bp.post("/<id:schedule_id>/run")
def run(schedule_id: int) -> tuple[str, int, dict[str, str]]:
    """Run now: the card with the outcome (started backup, or skipped and why); the
    backup list and the retention preview reload to show the new backup."""
    schedules.get_schedule(schedule_id)
    try:
        ran = schedules.run_now(schedule_id)
    except CatalogError as exc:
        return _card_error(schedule_id, exc)
    schedule = schedules.get_schedule(schedule_id)
    html = _render_card(schedule, ran=ran, clear_alerts=True)
    return html, 200, {"HX-Trigger": BACKUPS_EVENT}


# Retention preview


@bp.get("/retention")
def retention_preview() -> str:
    """What the next clean-up would delete and why; nothing is deleted here."""
    return render_template("partials/schedules/retention_preview.html", **_retention_context())


# Rendering helpers


def _render_list(fresh_form: bool = False, clear_alerts: bool = False) -> str:
    return render_template("partials/schedules/list.html",
                           schedule_views=_views(schedules.list_schedules()),
                           fresh_form=fresh_form, form=NEW_FORM, clear_alerts=clear_alerts)


def _render_card(schedule: Schedule, ran: ScheduleRun | None = None, message: str | None = None,
                 clear_alerts: bool = False) -> str:
    [view] = _views([schedule])
    return render_template("partials/schedules/card.html", view=view, ran=ran, message=message,
                           clear_alerts=clear_alerts)


def _card_error(schedule_id: int, exc: CatalogError) -> tuple[str, int, dict[str, str]]:
    """The card as it is now, with the refusal inside it, in place of the card (the
    refusing service rolled back)."""
    html = _render_card(schedules.get_schedule(schedule_id), message=exc.message)
    return html, exc.status, _retarget(f"#schedule-{schedule_id}")


def _retarget(selector: str) -> dict[str, str]:
    return {"HX-Retarget": selector, "HX-Reswap": "outerHTML"}


def _views(rows: list[Schedule]) -> list[dict[str, Any]]:
    """schedule_json() plus what the card shows: the next run in the schedule's zone, the
    latest run and the latest that started a backup, and whether a backup is active."""
    runs = schedules.recent_runs([row.id for row in rows])
    views = []
    for row in rows:
        data = schedules.schedule_json(row)
        views.append({
            **data,
            "nextLocalText": _zone_text(data["nextRunLocal"], row.timezone),
            "latestRun": runs.latest.get(row.id),
            "latestStarted": runs.started.get(row.id),
            "busy": row.id in runs.active or data["lastStatus"] in ACTIVE_STATUSES,
        })
    return views


@bp.app_template_filter("utc_text")
def utc_text(iso: str) -> str:
    """'Fri 2026-11-27 01:00 UTC': a <time> element's text until localtime.js rewrites it."""
    return _zone_text(iso, "UTC") or ""


def _zone_text(iso: str | None, zone: str) -> str | None:
    """'Fri 2026-11-27 02:00 CET' from nextRunLocal, with the zone's abbreviation."""
    if iso is None:
        return None
    local = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return local.strftime(f"{WEEKDAYS[local.weekday()][:3]} %Y-%m-%d %H:%M %Z")


@cache
def _zones() -> list[str]:
    """IANA names for the time zone field's suggestions."""
    legacy = ("Etc/", "SystemV/", "posix/", "right/")
    regions = (name for name in available_timezones()
               if "/" in name and not name.startswith(legacy))
    return [*sorted(regions), "UTC"]


def _retention_context() -> dict[str, Any]:
    rows = retention.preview()
    doomed = [row for row in rows if row.delete]
    kept = [row for row in rows if not row.delete]
    next_cleanup = schedules.CLEANUP_TIMING.next_run(schedules.now_utc())
    return {"doomed": doomed, "kept": kept[::-1],  # kept: newest first
            "next_cleanup": iso(next_cleanup)}


# The form


def _form_values(form: MultiDict[str, str]) -> dict[str, Any]:
    """The form as sent, stripped; shown again as is when it is refused."""
    values: dict[str, Any] = {name: form.get(name, "").strip() for name in TEXT_FIELDS}
    values["enabled"] = form.get("enabled") == "on"
    values["destinations"] = form.getlist("destinations")
    return values


def _values_of(schedule: Schedule) -> dict[str, Any]:
    """The edit form, filled in from the schedule (defaults for the unused fields)."""
    data = schedules.schedule_json(schedule)
    values = {name: "" if data[name] is None else str(data[name]) for name in TEXT_FIELDS}
    for name in ("time", "dayOfWeek", "dayOfMonth"):
        values[name] = values[name] or NEW_FORM[name]
    values["enabled"] = schedule.enabled
    values["destinations"] = list(schedule.destinations or [])
    return values


def _fields(values: dict[str, Any]) -> dict[str, Any]:
    """The schedule fields for the catalog. Fields of other frequencies are left out, so
    switching a weekly schedule to daily needs no clearing of its day by hand."""
    frequency = values["frequency"]
    fields: dict[str, Any] = {
        "name": values["name"], "type": values["type"], "frequency": frequency,
        "timezone": values["timezone"] or "UTC", "verify": values["verify"],
        "enabled": values["enabled"],
        "retention": _whole_number("retention", values["retention"]),
        "keepAtLeast": _whole_number("keepAtLeast", values["keepAtLeast"]),
        "destinations": values["destinations"] or None,  # none ticked: the default
    }
    for name, frequencies in USED_BY.items():
        used = frequency in frequencies
        if name in ("dayOfWeek", "dayOfMonth"):
            fields[name] = _whole_number(name, values[name]) if used else None
        else:
            fields[name] = (values[name] or None) if used else None
    try:  # names, choices and ranges as the API checks them; timing is the catalog's
        CreateScheduleRequest.model_validate({k: v for k, v in fields.items() if k != "time"})
    except ValidationError as exc:
        raise CatalogError(describe_validation_error(exc), code="invalid_schedule") from None
    return fields


def _whole_number(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        shown = f'"{raw}"' if raw else "nothing"
        raise CatalogError(f"{name}: {shown} is not a whole number",
                           code="invalid_schedule") from None


def _form_error(exc: CatalogError) -> FormError:
    field, sep, _ = exc.message.partition(":")
    if exc.code == "schedule_exists":
        field, sep = "name", ":"
    return FormError(exc.message, field if sep and field in NEW_FORM else None)
