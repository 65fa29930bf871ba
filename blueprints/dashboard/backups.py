"""The backups section: a paged, filtered table of backups, one backup's detail, and the
actions on them (create, watch, verify, delete, retry a copy).

The table is one page of the catalog, cut by the database (services.backups.list_backups):
10,000 backups cost what 50 do. Its filters, sort and page are query parameters of the
list fragment (ListQuery), pushed to the address bar, so every view is a link; loaded
directly, a fragment's URL renders the whole page with that view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from flask import make_response, render_template, request
from flask_login import current_user
from redis.exceptions import RedisError
from rq.job import Job
from rq.registry import StartedJobRegistry
from werkzeug.wrappers import Response as BaseResponse

from blueprints.api.serializers import job_json
from blueprints.auth import can
from blueprints.dashboard import bp
from blueprints.dashboard.events import REFRESH_EVENT
from blueprints.dashboard.labels import LEVEL_LABELS
from blueprints.dashboard.monitoring import first_step_links
from jobs.queues import VERIFY_QUEUE, queue, redis_connection
from services import backups, catalog_version, copy_retries, health, restores
from services.errors import CatalogError
from services.models import (
    ACTIVE_STATUSES,
    BACKUP_TYPES,
    STATUSES,
    VERIFY_LEVELS,
    Backup,
    Restore,
    utcnow,
)
from services.verification import start_verification

STALE_AFTER = timedelta(hours=24)
# A new backup gets its integrity check as a separate job, queued just after the backup
# completes; the list looks again for RECHECK_WINDOW in case it rendered in between.
RECHECK_WINDOW = timedelta(seconds=30)
MAX_PAGE, MAX_PER_PAGE = 1_000_000, 200  # as the API's ListBackupsQuery
# Where a verification is shown: a table row's cell, or the detail panel's block.
VERIFICATION_VIEWS = ("row", "detail")


@dataclass(frozen=True)
class ListQuery:
    """The table's filters, sort and page, as query parameters named as the API names
    them (``type``, ``status``, ``page``, ``perPage``), plus ``sort`` and ``order``."""

    type: str | None = None
    status: str | None = None
    sort: str = "created"
    order: str = "desc"
    page: int = 1
    per_page: int = 50

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> ListQuery:
        """The view ``args`` ask for; a value it cannot be is a 400 that says why."""
        return cls(
            type=_choice(args, "type", BACKUP_TYPES),
            status=_choice(args, "status", STATUSES),
            sort=_choice(args, "sort", tuple(backups.SORT_COLUMNS)) or "created",
            order=_choice(args, "order", ("desc", "asc")) or "desc",
            page=_whole_number(args, "page", MAX_PAGE) or 1,
            per_page=_whole_number(args, "perPage", MAX_PER_PAGE) or 50,
        )

    @property
    def filtered(self) -> bool:
        return bool(self.type or self.status)

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query parameters of this view with ``changes``, leaving defaults out."""
        view, default = replace(self, **changes), ListQuery()
        return {_PARAMS.get(field.name, field.name): getattr(view, field.name)
                for field in fields(self)
                if getattr(view, field.name) != getattr(default, field.name)}

    def sorted_by(self, column: str) -> dict[str, Any]:
        """The view sorted by ``column``: the other direction when it already is."""
        order = "asc" if self.sort == column and self.order == "desc" else "desc"
        return self.args(sort=column, order=order, page=1)


_PARAMS = {"per_page": "perPage"}


def _choice(args: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = args.get(name, "")
    if value and value not in allowed:
        raise CatalogError(f"{name}: {value[:40]!r} is not one of {', '.join(allowed)}",
                           code="invalid_filter")
    return value or None


def _whole_number(args: Mapping[str, str], name: str, largest: int) -> int | None:
    value = args.get(name, "")
    if value and not (value.isascii() and value.isdigit() and 1 <= int(value) <= largest):
        raise CatalogError(f"{name}: {value[:40]!r} is not a whole number from 1 to "
                           f"{largest:,}", code="invalid_filter")
    return int(value) if value else None


@dataclass(frozen=True)
class Summary:
    """The figures above the table: the whole catalog's, whatever the filters."""

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


@dataclass(frozen=True)
class Detail:
    """One backup as its detail panel shows it, opened from the table's view ``query``
    (where its Close button goes back to)."""

    backup: Backup
    verifying: Verifying | None
    children: list[Backup]
    restores: list[Restore]
    query: ListQuery


@bp.get("/system/backup/list", endpoint="backups")
def backup_list() -> BaseResponse:
    """The summary and table fragment; it reloads itself on REFRESH_EVENT (and polls while
    it waits for a new backup's check). Its own reloads send back the tag it was rendered
    with (``seen``): while that is still the view's tag, the answer is an empty 204, which
    htmx does not swap, and nothing is read but the catalog's version and the queue."""
    if (whole := _whole_page()) is not None:
        return whole
    state = ListState.now()
    if request.args.get("seen") == state.tag or request.if_none_match.contains_weak(state.tag):
        response, tag = make_response("", 204), state.tag
    else:
        context = page_context(state)
        response = make_response(render_template("partials/backups/list.html", **context))
        tag = context["list_tag"]
    if tag:
        response.set_etag(tag, weak=True)
    # Never from the browser's cache: a cached copy would make the browser send its own
    # If-None-Match for a view the page no longer shows.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/system/backup/backups/<backup_id:backup_id>")
def backup_detail(backup_id: str) -> str | BaseResponse:
    """One backup's detail panel; loaded directly, the page with it open. Its refresh
    (``refresh=1``, on REFRESH_EVENT) answers nothing once the backup has been deleted,
    which closes the panel."""
    if (whole := _whole_page()) is not None:
        return whole
    try:
        detail = detail_of(backup_id)
    except CatalogError as exc:
        if exc.status == 404 and request.args.get("refresh"):
            return ""
        raise
    return render_template("partials/backups/detail.html", detail=detail)


@bp.post("/system/backup")
def create() -> str:
    """Queue a backup; the table at its first view, the new backup on top, with progress."""
    kind = request.form.get("type", "")
    if kind not in BACKUP_TYPES:
        raise CatalogError(f"unknown backup type {kind!r}; use one of {BACKUP_TYPES}")
    backups.create_backup(kind, compress="compress" in request.form,
                          destinations=request.form.getlist("destinations") or None)
    return render_template("partials/backups/list.html", clear_alerts=True, **page_context())


@bp.delete("/system/backup/<backup_id:backup_id>")
def delete(backup_id: str) -> tuple[str, int, dict[str, str]]:
    """Every panel that shows backups reloads itself (the table keeps its view; an open
    detail of this backup closes)."""
    backups.delete_backup(backup_id, actor=current_user.display_name)
    return render_template("partials/backups/deleted.html"), 200, {"HX-Trigger": REFRESH_EVENT}


@bp.post("/system/backup/<backup_id:backup_id>/copies/<destination>/retry")
def retry_copy(backup_id: str, destination: str) -> str:
    """Queue another attempt at a failed copy; the detail shows it ``retrying``."""
    copy_retries.retry(backup_id, destination, actor=current_user.display_name)
    return render_template("partials/backups/detail.html", detail=detail_of(backup_id),
                           clear_alerts=True)


@bp.get("/system/backup/<backup_id:backup_id>/progress")
def progress(backup_id: str) -> tuple[str, int, dict[str, str]] | str:
    """The polling progress bar; once the job has ended, a final fragment that stops
    polling and an HX-Trigger that makes the table reload with the final state."""
    backup = backups.get_backup(backup_id)
    if not backup.is_active:
        html = render_template("partials/backups/progress.html", backup=backup)
        return html, 200, {"HX-Trigger": REFRESH_EVENT}
    job, problem = job_or_problem(backup.job_id or backup.id)
    return render_template("partials/backups/progress.html", backup=backup, job=job,
                           problem=problem)


@bp.post("/system/backup/<backup_id:backup_id>/verify")
def verify(backup_id: str) -> str:
    """Queue a verification; the row's cell or the detail's block (``view``) then polls it."""
    level, view = request.form.get("level", "integrity"), _view(request.form)
    job_id = start_verification(backup_id, level)
    return render_template("partials/backups/verification.html",
                           backup=backups.get_backup(backup_id), view=view,
                           verifying=Verifying(job_id, level), clear_alerts=True)


@bp.get("/system/backup/<backup_id:backup_id>/verification/<job_id:job_id>")
def verification(backup_id: str, job_id: str) -> str | tuple[str, int, dict[str, str]]:
    """The verification while ``job_id`` runs; once it has ended, without polling and
    with the result the job stored on the backup, and REFRESH_EVENT for the other views."""
    backup, view = backups.get_backup(backup_id), _view(request.args)
    level = request.args.get("level", "")
    try:
        job, problem = job_json(backups.job_status(job_id)), None
    except CatalogError as exc:  # 404: the job and its result have expired
        job, problem = None, None if exc.status == 404 else exc.message
    # While Redis is unreachable (a problem), keep polling and say why.
    active = problem is not None or (job is not None and job["status"] in ACTIVE_STATUSES)
    if not active:
        failed = (job.get("error") or "see the worker log") if job and job["status"] == "failed" \
            else None
        html = render_template("partials/backups/verification.html", backup=backup, view=view,
                               failed=failed)
        return html, 200, {"HX-Trigger": REFRESH_EVENT}
    verifying = Verifying(job_id, level if level in VERIFY_LEVELS else "integrity", job,
                          problem)
    return render_template("partials/backups/verification.html", backup=backup, view=view,
                           verifying=verifying)


def job_or_problem(job_id: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return job_json(backups.job_status(job_id)), None
    except CatalogError as exc:
        return None, exc.message


@dataclass(frozen=True)
class ListState:
    """What the table shows besides its rows, read before them: the view, the running
    verifications, and the tag of both with the catalog's version, the role (which decides
    the actions shown) and the minute (ages read '5 min ago')."""

    query: ListQuery
    verifying: dict[str, Verifying]
    tag: str

    @classmethod
    def now(cls) -> ListState:
        query, verifying = ListQuery.from_args(request.args), _active_verifications()
        running = sorted((backup_id, job.job_id, job.level)
                         for backup_id, job in verifying.items())
        tag = catalog_version.etag("list", sorted(query.args().items()), running,
                                   current_user.role, int(utcnow().timestamp()) // 60)
        return cls(query, verifying, tag)


def page_context(state: ListState | None = None) -> dict[str, Any]:
    """The table's view as the request's query parameters ask: summary, page, running
    verifications; the same work for any size of catalog. ``list_tag`` is None on a first
    run, whose first steps change with the settings, not the catalog."""
    state = state or ListState.now()
    query, verifying = state.query, state.verifying
    page = backups.list_backups(query.type, query.status, query.page, query.per_page,
                                query.sort, query.order == "desc")
    total, total_size = backups.totals() if query.filtered else (page.total, page.total_size)
    first_run = total == 0 and can("dashboard.create")
    return {"query": query, "types": BACKUP_TYPES, "statuses": STATUSES, "page": page,
            "verifying": verifying, "first_steps": health.first_steps() if first_run else None,
            "first_step_links": first_step_links() if first_run else None,
            "summary": Summary(total, total_size, backups.newest_good_backup()),
            "recheck": _recheck_soon(page.backups, verifying),
            "list_tag": None if first_run else state.tag}


def section_context() -> dict[str, Any]:
    """What templates/sections/backups.html needs besides the page's ``kinds``: the
    table, the chains panel and, on a backup's own URL, its detail."""
    from blueprints.dashboard import chains  # it imports restores, which imports this

    opened = request.endpoint == "dashboard.backup_detail" and request.view_args
    detail = detail_of(opened["backup_id"]) if opened else None
    return {**page_context(), **chains.page_context(), "detail": detail}


def detail_of(backup_id: str) -> Detail:
    return Detail(backups.get_backup(backup_id), _active_verifications().get(backup_id),
                  backups.children_of(backup_id), restores.restores_of(backup_id),
                  ListQuery.from_args(request.args))


def _whole_page() -> BaseResponse | None:
    """The whole page with the Backups section, unless htmx asks for a fragment: a direct
    load of a fragment's URL, and htmx's history restore, need the page."""
    from blueprints.dashboard import page  # the shell, which imports this module

    return None if page.wants_fragment() else page.show("backups")


def _view(args: Mapping[str, str]) -> str:
    view = args.get("view", "detail")
    if view not in VERIFICATION_VIEWS:
        raise CatalogError(f"view: {view[:40]!r} is not one of {', '.join(VERIFICATION_VIEWS)}")
    return view


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
    queued; the table then reloads itself every few seconds until it sees the job."""
    now = utcnow()
    return any(
        backup.status == "completed" and backup.verification == "unverified"
        and backup.origin != "safety" and backup.id not in verifying
        and backup.finished_at is not None and now - backup.finished_at < RECHECK_WINDOW
        for backup in backups
    )
