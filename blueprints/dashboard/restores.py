"""The restore panel (dry run first, then a confirmed restore) and the restores list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app, render_template, request

from blueprints.api.serializers import dry_run_json
from blueprints.dashboard import bp
from blueprints.dashboard.backups import job_or_problem
from blueprints.dashboard.events import REFRESH_EVENT, RESTORES_EVENT
from services import restores
from services.backups import get_backup
from services.errors import CatalogError
from services.models import Backup


@bp.get("/system/backup/<backup_id:backup_id>/restore")
def restore_panel(backup_id: str) -> str | tuple[str, int, dict[str, str]]:
    """The dry-run analysis and the restore choices, swapped into #restore-panel."""
    target = request.args.get("target_database", "").strip() or None
    try:
        analysis = dry_run_json(restores.dry_run(backup_id, target))
    except CatalogError as exc:
        if target is None:
            raise  # opened from a card: the page's alert area
        return inline_error(exc, "new-database")
    return render_panel(get_backup(backup_id), analysis, target)


def render_panel(backup: Backup, analysis: dict[str, Any], new_database: str | None,
                 point_in_time: datetime | None = None) -> str:
    """The restore panel for ``analysis``; with ``point_in_time``, of restoring the chain
    of ``backup`` (its last link read) to that moment."""
    protected = current_app.config["TARGET_DATABASE"]
    when = point_in_time or backup.created_at
    suggested = f"{protected[:40]}_restored_{when:%Y%m%d_%H%M}"
    return render_template(
        "partials/restores/panel.html", backup=backup, analysis=analysis,
        new_database=new_database, protected=protected, suggested=suggested,
        point_in_time=point_in_time,
    )


@bp.get("/system/backup/restore-panel/closed")
def restore_panel_closed() -> str:
    """Nothing: a panel's Close button (the restore panel's, a backup's detail's) swaps
    the panel's content for this."""
    return ""


@bp.post("/system/backup/<backup_id:backup_id>/restore")
def restore(backup_id: str) -> str | tuple[str, int, dict[str, str]]:
    """Start a restore chosen in the panel; a refusal is shown next to its form."""
    mode = request.form.get("mode", "")
    create_roles = request.form.get("create_roles") == "on"
    try:
        moment = parse_moment(request.form.get("point_in_time", ""))
        if mode == "new-database":
            name = request.form.get("target_database", "").strip()
            if not name:
                raise CatalogError("Name the new database to restore into.")
            started = restores.start_restore(backup_id, mode, name, create_roles=create_roles,
                                             point_in_time=moment)
        elif mode == "overwrite":
            _require_typed_name(request.form.get("confirm_database", ""))
            started = restores.start_restore(backup_id, mode, create_roles=create_roles,
                                             point_in_time=moment)
        elif mode == "rehearsal":
            started = restores.start_restore(backup_id, mode, point_in_time=moment)
        else:
            raise CatalogError(f"unknown restore mode {mode!r}")
    except CatalogError as exc:
        return inline_error(exc, mode if mode in ("overwrite", "rehearsal") else "new-database")
    html = render_template("partials/restores/started.html", restore=started, clear_alerts=True)
    return html, 200, {"HX-Trigger": RESTORES_EVENT}


def parse_moment(text: str) -> datetime | None:
    """A moment typed in the dashboard: the browser's ``datetime-local`` value (no zone:
    UTC, as the form says) or RFC 3339 with a zone; None for an empty field."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CatalogError(f"{text!r} is not a moment: give a date and time in UTC, such as "
                           "2024-01-15T10:31:07Z", code="invalid_point_in_time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _require_typed_name(typed: str) -> None:
    protected = current_app.config["TARGET_DATABASE"]
    if typed.strip() != protected:
        raise CatalogError(
            f"To restore over {protected}, type its name exactly as shown "
            f"(you typed {typed.strip()!r}). Nothing was restored.",
            code="confirmation_mismatch",
        )


def inline_error(exc: CatalogError, slot: str) -> tuple[str, int, dict[str, str]]:
    """The refusal, swapped into the error slot of the form that caused it."""
    message = exc.message.removeprefix("targetDatabase: ")  # the API's field name
    html = render_template("partials/shared/inline_error.html", message=message)
    return html, exc.status, {"HX-Retarget": f"#restore-error-{slot}",
                              "HX-Reswap": "innerHTML"}


@bp.get("/system/backup/restores")
def restores_list() -> str:
    """The restores panel; reloads itself on RESTORES_EVENT."""
    return render_template("partials/restores/list.html", **page_context())


@bp.get("/system/backup/restores/<restore_id:restore_id>/progress")
def restore_progress(restore_id: str) -> tuple[str, int, dict[str, str]] | str:
    """Like a backup's progress: polls while the restore runs, then triggers a reload of
    the restores panel (and of the backups, which may hold a new safety backup)."""
    return _polled("partials/restores/progress.html", restore_id)


@bp.get("/system/backup/restores/<restore_id:restore_id>/state")
def restore_state(restore_id: str) -> tuple[str, int, dict[str, str]] | str:
    """The restore panel after a restore started: polls while the restore runs and ends
    in its final state, completed or failed, with the same triggers as the progress."""
    return _polled("partials/restores/started.html", restore_id)


def _polled(template: str, restore_id: str) -> tuple[str, int, dict[str, str]] | str:
    row = restores.get_restore(restore_id)
    if not row.is_active:
        html = render_template(template, restore=row)
        return html, 200, {"HX-Trigger": f"{RESTORES_EVENT}, {REFRESH_EVENT}"}
    job, problem = job_or_problem(row.job_id or row.id)
    return render_template(template, restore=row, job=job, problem=problem)


def page_context() -> dict[str, Any]:
    return {"restores": restores.list_restores(limit=10),
            "protected": current_app.config["TARGET_DATABASE"]}
