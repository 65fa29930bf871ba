"""The activity log: who did what, when, from where, and how it went.

Service functions call :func:`record` after a state change; the actor is the logged-in
user or token inside a request, else what the caller names (worker, scheduler, cli).
The log is append-only from the app's point of view: a flush or statement that would
change or delete an event raises :class:`AppendOnlyError`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import Select, event, select
from sqlalchemy.orm import ORMExecuteState, Session

from extensions import db
from models import ActivityEvent

EXPORT_FIELDS = ("at", "actor", "action", "target", "outcome", "source", "detail")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection), and
# actors and targets can be whatever someone typed into the login form.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class AppendOnlyError(RuntimeError):
    """Something tried to change or delete an activity event."""


@dataclass(frozen=True)
class Filters:
    """What to select from the log; None means any."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None


def record(action: str, target: str | None = None, *, outcome: str = "ok",
           detail: str | None = None, actor: str | None = None) -> None:
    """Add one event and commit it (with whatever the caller has pending)."""
    db.session.add(ActivityEvent(
        actor=actor or _request_actor(), action=action, target=target, outcome=outcome,
        source=request.remote_addr if has_request_context() else None, detail=detail,
    ))
    db.session.commit()


def _request_actor() -> str:
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user.display_name
    return "cli" if not has_request_context() else "anonymous"


def recent(limit: int = 50, filters: Filters | None = None) -> list[ActivityEvent]:
    """The newest ``limit`` events matching ``filters``, newest first."""
    query = _matching(filters or Filters())
    return list(db.session.scalars(
        query.order_by(ActivityEvent.at.desc(), ActivityEvent.id.desc()).limit(limit)))


def oldest_first(filters: Filters) -> Iterator[ActivityEvent]:
    """Every matching event, oldest first, fetched in batches (the log can be long)."""
    query = _matching(filters).order_by(ActivityEvent.at, ActivityEvent.id)
    yield from db.session.scalars(query.execution_options(yield_per=500))


def _matching(filters: Filters) -> Select:
    query = select(ActivityEvent)
    if filters.since:
        query = query.where(ActivityEvent.at >= filters.since)
    if filters.until:
        query = query.where(ActivityEvent.at < filters.until)
    for column, value in ((ActivityEvent.actor, filters.actor),
                          (ActivityEvent.action, filters.action),
                          (ActivityEvent.outcome, filters.outcome)):
        if value is not None:
            query = query.where(column == value)
    return query


def as_dict(event: ActivityEvent) -> dict[str, Any]:
    values = {name: getattr(event, name) for name in EXPORT_FIELDS}
    values["at"] = event.at.isoformat(timespec="milliseconds") + "Z"
    return values


def csv_lines(events: Iterable[ActivityEvent]) -> Iterator[str]:
    """A header, then one CSV line per event; formula-like cells are quoted with ``'``."""
    yield _csv_line(EXPORT_FIELDS)
    for item in events:
        yield _csv_line([_spreadsheet_safe(value) for value in as_dict(item).values()])


def json_lines(events: Iterable[ActivityEvent]) -> Iterator[str]:
    for item in events:
        yield json.dumps(as_dict(item)) + "\n"


def _csv_line(values: Iterable[str | None]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def _spreadsheet_safe(value: str | None) -> str | None:
    return "'" + value if value and value.startswith(FORMULA_STARTS) else value


@event.listens_for(Session, "before_flush")
def _refuse_changed_events(session: Session, _context: Any, _instances: Any) -> None:
    for instance in (*session.dirty, *session.deleted):
        if isinstance(instance, ActivityEvent) and (
                instance in session.deleted or session.is_modified(instance)):
            raise AppendOnlyError("the activity log is append-only")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
            mapper.class_ is ActivityEvent for mapper in state.all_mappers):
        raise AppendOnlyError("the activity log is append-only")
