"""The dashboard's monitoring panels, under /system/backup/monitoring: system health with the
open alerts, the activity log, charts, and the notification channels with their deliveries.

HTML fragments for htmx, like ``dashboard.py``. The dashboard page includes the partials;
each partial gets its data from the view that renders it (``monitoring_*``: this module's
views for the panels alone, :func:`page_context` for the page). The health panel is the
exception: the page holds a placeholder that loads it at once and the panel then polls
itself every 30 s, so a slow check never delays the page.

Panels reload themselves on the page's events: ``backups-changed`` (a backup's job ended),
``restores-changed``, ``schedules-changed``, and this module's ``channels-changed`` and
``deliveries-changed``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from pydantic import Field, ValidationError
from werkzeug.datastructures import MultiDict

from blueprints.api.notifications import CHANNEL_REQUEST
from blueprints.api.schemas import ActivityFilter
from blueprints.errors import describe_validation_error
from services import activity, alerts, charts, health, notifications
from services.errors import CatalogError
from services.models import BACKUP_TYPES, Alert, Delivery, NotificationChannel

bp = Blueprint("monitoring", __name__, url_prefix="/system/backup/monitoring")

ACTIVITY_PAGE = 20  # events shown at first, and added by each "Show more"
CHART_POINTS = 100  # the newest completed backups drawn
DELIVERIES_SHOWN = 20
CHANNELS_EVENT = "channels-changed"
DELIVERIES_EVENT = "deliveries-changed"
STATUS_ORDER = {"critical": 0, "warning": 1, "setup": 2, "ok": 3}  # services.health.STATUSES
OVERALL_LABELS = {"ok": "All systems OK", "setup": "Getting started",
                  "warning": "Needs attention", "critical": "Critical problem"}
# Where the first steps lead: the new-backup form, and the Schedules section.
NEW_BACKUP_ANCHOR = "new-backup"
CHECK_LABELS = {
    "database": "Protected database", "client-tools": "Client tools", "redis": "Redis",
    "workers": "Workers", "scheduler": "Scheduler", "disk": "Disk space",
    "destinations": "Storage destinations", "backup-age": "Backup age",
    "failed-jobs": "Failed jobs", "change-capture": "Change capture",
}
ACTION_LABELS = {
    "login": "Log in", "logout": "Log out",
    "backup.create": "Backup requested", "backup.run": "Backup taken",
    "backup.delete": "Backup deleted", "backup.download": "Backup downloaded",
    "backup.verify": "Verification requested", "backup.verified": "Backup verified",
    "restore.start": "Restore requested", "restore.run": "Restore run",
    "schedule.create": "Schedule created", "schedule.update": "Schedule changed",
    "schedule.delete": "Schedule deleted", "schedule.run": "Schedule fired",
    "channel.create": "Channel added", "channel.update": "Channel changed",
    "channel.delete": "Channel deleted", "channel.test": "Channel tested",
    "token.use": "Token call", "token.refused": "Token refused",  # token.use: older logs
    "token.create": "Token created", "token.revoke": "Token revoked",
    "user.create": "User created", "user.role": "Role changed",
    "user.password": "Password changed", "user.unlock": "User unlocked",
    "user.sessions": "Sessions ended", "user.totp": "Second factor changed",
    "user.delete": "User deleted", "activity.export": "Activity exported",
    "slot.drop": "Replication slot dropped", "copy.delete": "Copy deleted",
    "backup.copy": "Copy made", "backup.copy.retry": "Copy retried",
    "backup.import": "Backup found by rescan", "destination.create": "Destination added",
    "destination.update": "Destination changed", "destination.delete": "Destination deleted",
    "destinations.rescan.start": "Rescan requested", "destinations.rescan": "Rescan done",
    "destination.test": "Destination tested",
}
ACTIVITY_KINDS = {  # activity.KINDS, as the activity panel's filter names them
    "backup": "Backups", "restore": "Restores", "schedule": "Schedules",
    "destination": "Destinations", "channel": "Notification channels",
    "user": "Users and logins", "token": "API tokens", "activity": "Log exports",
}
KIND_LABELS = {"webhook": "Webhook", "slack": "Slack", "email": "Email (SMTP)"}
EMAIL_SECURITY = {"starttls": "STARTTLS (usually port 587)", "ssl": "TLS (usually port 465)",
                  "none": "None (plain text)"}
TYPE_COLORS = {"full": charts.PALETTE[0], "schema-only": charts.PALETTE[1],
               "incremental": charts.PALETTE[2]}
NEW_CHANNEL = {"kind": "webhook", "name": "", "url": "", "host": "", "port": "587",
               "from": "", "to": "", "security": "starttls", "username": "", "enabled": True}

bp.add_app_template_global(KIND_LABELS, "CHANNEL_KIND_LABELS")
bp.add_app_template_global(EMAIL_SECURITY, "EMAIL_SECURITY")


# Health


@dataclass(frozen=True)
class HealthView:
    status: str
    checks: list[health.HealthCheck]
    checked_at: datetime
    alerts: list[Alert]

    @property
    def label(self) -> str:
        return OVERALL_LABELS.get(self.status, self.status)

    @property
    def tally(self) -> list[tuple[str, int]]:
        """[('critical', 2), ('ok', 7)]: how many checks have each status, worst first."""
        counts = {status: 0 for status in STATUS_ORDER}
        for check in self.checks:
            counts[check.status] = counts.get(check.status, 0) + 1
        return [(status, count) for status, count in counts.items() if count]

    @property
    def problems(self) -> list[health.HealthCheck]:
        """The checks that are warning or critical, worst first (a first run is none)."""
        bad = [check for check in self.checks if check.status not in ("ok", "setup")]
        return sorted(bad, key=lambda check: STATUS_ORDER.get(check.status, 0))

    @property
    def first_steps(self) -> dict[str, str] | None:
        """A first run's steps ({"backup": "todo", "schedule": "done"}), else None."""
        for check in self.checks:
            if check.status == "setup" and "firstSteps" in check.data:
                return check.data["firstSteps"]
        return None

    @property
    def links(self) -> dict[str, str]:
        """Where the first steps' buttons go."""
        return first_step_links()


def first_step_links() -> dict[str, str]:
    """The new-backup form and the Schedules section."""
    return {"backup": f"{url_for('dashboard.index')}#{NEW_BACKUP_ANCHOR}",
            "schedule": url_for("dashboard.section.schedules")}


@bp.app_template_filter("check_label")
def check_label(name: str) -> str:
    return CHECK_LABELS.get(name, name)


@bp.app_template_filter("split_hint")
def split_hint(reason: str) -> tuple[str, str]:
    """A health reason's problem and its troubleshooting hint ('' when it has none)."""
    problem, _, hint = reason.partition(" Troubleshooting: ")
    return problem, hint


@bp.get("/health")
def health_panel() -> str:
    """The health panel; it polls this every 30 s."""
    return render_template("partials/monitoring/health.html", view=_health_view())


def _health_view() -> HealthView:
    now = datetime.now(UTC)
    checks = health.run_checks_or_report(now)
    newest_first = sorted(alerts.open_alerts(), key=lambda alert: alert.started_at,
                          reverse=True)
    open_alerts = sorted(newest_first, key=lambda alert: STATUS_ORDER.get(alert.severity, 0))
    return HealthView(health.overall(checks), checks, now.replace(tzinfo=None), open_alerts)


# Activity log


class ActivityPanelQuery(ActivityFilter):
    """The API's filters, and how many of the newest matching events the panel shows."""

    limit: int = Field(default=ACTIVITY_PAGE, ge=1, le=1000)


def activity_context(query: ActivityPanelQuery | None = None,
                     error: str | None = None) -> dict[str, Any]:
    """The panel's events matching ``query`` (none: every event); with ``error``, why the
    filters asked for were refused, and no events."""
    query = query or ActivityPanelQuery()
    events = [] if error else activity.recent(query.limit + 1, query.filters())
    more = len(events) > query.limit and query.limit + ACTIVITY_PAGE <= 1000
    return {"events": events[:query.limit], "limit": query.limit,
            "more": query.limit + ACTIVITY_PAGE if more else None,
            "labels": ACTION_LABELS, "kinds": ACTIVITY_KINDS,
            "outcomes": activity.OUTCOMES, "actors": activity.recent_actors(),
            "chosen": query.model_dump(mode="json", exclude_none=True, exclude={"limit"}),
            "error": error}


@bp.get("/activity")
def activity_log() -> str | tuple[str, int, dict[str, str]]:
    """The panel, filtered as the API's list is (an empty field of its form: any)."""
    chosen = {key: value.strip() for key, value in request.args.items() if value.strip()}
    try:
        query = ActivityPanelQuery.model_validate(chosen)
    except ValidationError as exc:
        html = render_template("partials/monitoring/activity.html", monitoring_activity=
                               activity_context(error=describe_validation_error(exc)))
        return html, 400, {"HX-Retarget": "#activity", "HX-Reswap": "outerHTML"}
    return render_template("partials/monitoring/activity.html",
                           monitoring_activity=activity_context(query))


# Charts


@dataclass(frozen=True)
class Storage:
    svg: str | None
    error: str | None
    path: str


def charts_context() -> dict[str, Any]:
    rows = charts.completed_backups(CHART_POINTS)
    kinds = [*BACKUP_TYPES, *sorted({row.type for row in rows} - set(BACKUP_TYPES))]
    sizes, durations = [], []
    for index, kind in enumerate(kinds):
        of_kind = [row for row in rows if row.type == kind]
        color = TYPE_COLORS.get(kind, charts.PALETTE[index % len(charts.PALETTE)])
        sizes.append(charts.Series(kind, [
            charts.Point(row.created_at, row.size, row.id)
            for row in of_kind if row.size is not None], color))
        durations.append(charts.Series(kind, [
            charts.Point(row.created_at, row.duration_ms, row.id)
            for row in of_kind if row.duration_ms is not None], color))
    return {"size_svg": charts.size_chart(sizes), "duration_svg": charts.duration_chart(durations),
            "storage": _storage(), "shown": len(rows), "limit": CHART_POINTS}


@bp.get("/charts")
def charts_panel() -> str:
    return render_template("partials/monitoring/charts.html", monitoring_charts=charts_context())


def _storage() -> Storage:
    """BACKUP_DIR's disk: used by the catalog's completed backups, used by others, free."""
    path = Path(current_app.config["BACKUP_DIR"])
    backups = charts.completed_bytes()
    probe = path
    while not probe.exists() and probe != probe.parent:  # not created yet: its disk
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return Storage(None, f"cannot read the disk use of BACKUP_DIR {path}: {exc}", str(path))
    config = current_app.config
    svg = charts.storage_bar(
        backups=backups, used=usage.used, free=usage.free, location=str(path),
        warning_percent=_percent(config.get("DISK_WARNING_PERCENT", 80)),
        critical_percent=_percent(config.get("DISK_CRITICAL_PERCENT", 90)))
    return Storage(svg, None, str(path))


def _percent(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # the disk health check reports the bad setting


# Notification channels


@dataclass(frozen=True)
class ChannelView:
    channel: NotificationChannel
    config: dict[str, Any]
    last: Delivery | None


def channels_context() -> dict[str, Any]:
    return {"channel_views": [_channel_view(channel) for channel in notifications.list_channels()],
            "deliveries": notifications.recent_deliveries(DELIVERIES_SHOWN),
            "new_form": NEW_CHANNEL}


@bp.get("/channels")
def channels_panel() -> str:
    return _render_channels()


@bp.get("/channels/fields")
def channel_fields() -> str:
    """The add form's settings for the kind chosen in its select."""
    kind = request.args.get("kind", "webhook")
    form = {**NEW_CHANNEL, "kind": kind if kind in notifications.KINDS else "webhook"}
    return render_template("partials/monitoring/channel_fields.html", channel_form=form)


@bp.post("/channels")
def add_channel() -> tuple[str, int, dict[str, str]]:
    values = _form_values(request.form)
    try:
        fields = _validated(_channel_body(values))
        notifications.save_channel(NotificationChannel(), fields)
    except CatalogError as exc:  # save_channel rolled back
        return _form_error(values, exc.message, exc.status)
    except ValidationError as exc:
        return _form_error(values, _readable(exc, values["kind"]), 400)
    return _render_channels(clear_alerts=True), 200, {"HX-Trigger": CHANNELS_EVENT}


@bp.post("/channels/<id:channel_id>/test")
def test_channel(channel_id: int) -> tuple[str, int, dict[str, str]]:
    """Send a test notification now; the card shows how it went."""
    channel = _channel(channel_id)
    delivery = notifications.send_test(channel)
    html = render_template("partials/monitoring/channel_card.html",
                           view=_channel_view(channel), test=delivery)
    return html, 200, {"HX-Trigger": DELIVERIES_EVENT}


@bp.post("/channels/<id:channel_id>/enabled")
def toggle_channel(channel_id: int) -> tuple[str, int, dict[str, str]]:
    channel = _channel(channel_id)
    notifications.save_channel(channel, {"enabled": not channel.enabled})
    return _render_channels(clear_alerts=True), 200, {"HX-Trigger": CHANNELS_EVENT}


@bp.delete("/channels/<id:channel_id>")
def delete_channel(channel_id: int) -> tuple[str, int, dict[str, str]]:
    notifications.delete_channel(_channel(channel_id).id)
    return _render_channels(clear_alerts=True), 200, {"HX-Trigger": CHANNELS_EVENT}


@bp.get("/deliveries")
def deliveries() -> str:
    return render_template("partials/monitoring/deliveries.html",
                           deliveries=notifications.recent_deliveries(DELIVERIES_SHOWN))


def _render_channels(clear_alerts: bool = False) -> str:
    return render_template("partials/monitoring/channels.html",
                           monitoring_channels=channels_context(), clear_alerts=clear_alerts)


def _channel(channel_id: int) -> NotificationChannel:
    """The channel, or a 404; an id beyond 64 bits is no channel (and no SQLite error)."""
    if channel_id >= 2**63:
        raise CatalogError(f"no notification channel with id {channel_id}", status=404,
                           code="not_found")
    return notifications.get_channel(channel_id)


def _channel_view(channel: NotificationChannel) -> ChannelView:
    return ChannelView(channel, notifications.public_config(channel),
                       notifications.last_delivery(channel.id))


def _form_values(form: MultiDict[str, str]) -> dict[str, Any]:
    """What the user typed, to fill the form again after a refusal; never the secrets."""
    values: dict[str, Any] = {key: form.get(key, default).strip()
                              for key, default in NEW_CHANNEL.items() if key != "enabled"}
    values["enabled"] = "enabled" in form
    values["secret"] = form.get("secret", "")
    values["password"] = form.get("password", "")
    if values["kind"] not in notifications.KINDS:
        values["kind"] = "webhook"
    return values


def _channel_body(values: dict[str, Any]) -> dict[str, Any]:
    """The API's request body for the form's values."""
    kind = values["kind"]
    config: dict[str, Any]
    if kind == "webhook":
        config = {"url": values["url"]}
        if values["secret"]:
            config["secret"] = values["secret"]
    elif kind == "slack":
        config = {"url": values["url"]}
    else:
        port: Any = values["port"] or "587"
        if port.isdigit():
            port = int(port)
        recipients = [part for part in values["to"].replace(";", ",").replace(" ", ",")
                      .split(",") if part]
        config = {"host": values["host"], "port": port, "from": values["from"],
                  "to": recipients, "starttls": values["security"] == "starttls",
                  "ssl": values["security"] == "ssl"}
        if values["username"]:
            config["username"] = values["username"]
        if values["password"]:
            config["password"] = values["password"]
    return {"name": values["name"], "kind": kind, "enabled": values["enabled"],
            "config": config}


def _validated(body: dict[str, Any]) -> dict[str, Any]:
    """The API's own validation (blueprints/api/notifications.py), then the stored fields."""
    channel = CHANNEL_REQUEST.validate_python(body)
    return {"name": channel.name, "kind": channel.kind, "enabled": channel.enabled,
            "config": channel.config.model_dump(by_alias=True, exclude_none=True)}


def _readable(exc: ValidationError, kind: str) -> str:
    """pydantic's message without the union's tag: 'config.url: Field required'."""
    return describe_validation_error(exc).replace(f"{kind}.", "").replace(
        "config.from_", "config.from")


def _form_error(values: dict[str, Any], message: str,
                status: int) -> tuple[str, int, dict[str, str]]:
    html = render_template("partials/monitoring/channel_form.html", channel_form=values,
                           error=message)
    return html, status, {"HX-Retarget": "#channel-form", "HX-Reswap": "outerHTML"}
