"""The activity log: who did what, when, from where, and how it went.

Service functions call :func:`record` after a state change; the actor is the logged-in
user or token inside a request, else what the caller names (worker, scheduler, cli).
One action, one event: a token's call that records none of its own (refused, in conflict,
invalid) gets one named like the action's (:func:`record_call`, from blueprints/auth.py).
Outcomes are the fixed set OUTCOMES; actions fall into the kinds of KINDS, by their
first name (``backup`` in ``backup.create``).
The log is append-only from the app's point of view: a flush or statement that would
change or delete an event raises :class:`AppendOnlyError`. The one exception is counting:
what a client can repeat at will (a refused token) goes through :func:`record_repeatable`,
which counts a repeat on the event it repeats (``times = times + 1``) instead of adding one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast, get_args

from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import ColumnElement, Select, event, func, inspect, or_, select
from sqlalchemy.orm import ORMExecuteState, Session

from services.extensions import db
from services.json_shapes import iso
from services.models import ActivityEvent, utcnow

EXPORT_FIELDS = ("at", "actor", "action", "target", "outcome", "source", "detail", "times")
REPEAT_WINDOW = timedelta(minutes=15)  # a repeat within it is counted, not added
SHORT = 100  # characters of a client's text (a path) kept in an event
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection), and
# actors and targets can be whatever someone typed into the login form.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ACTORS_FROM = 1000  # the filter's suggested actors: those of this many newest events

# ok: done. failed: tried and did not work (a job, a wrong password, a server error).
# refused: not allowed (a role, a bad token, a locked account, too many attempts).
# conflict: not possible now (a backup already running, a locked backup: HTTP 409, 423).
# invalid: the request was wrong (bad input, nothing by that id: the other 4xx).
Outcome = Literal["ok", "failed", "refused", "conflict", "invalid"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
Kind = Literal["backup", "restore", "schedule", "destination", "channel", "user", "token",
               "activity"]
# Each kind's actions, by their first name: backup.create, copy.delete, login, ...
KINDS: dict[Kind, tuple[str, ...]] = {
    "backup": ("backup", "copy", "slot"), "restore": ("restore",),
    "schedule": ("schedule",), "destination": ("destination", "destinations"),
    "channel": ("channel",), "user": ("user", "login", "logout"), "token": ("token",),
    "activity": ("activity",),
}


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
    kind: Kind | None = None


def record(action: str, target: str | None = None, *, outcome: str = "ok",
           detail: str | None = None, actor: str | None = None) -> None:
    """Add one event and commit it (with whatever the caller has pending)."""
    db.session.add(ActivityEvent(
        actor=actor or _request_actor(), action=action, target=target, outcome=outcome,
        source=request.remote_addr if has_request_context() else None, detail=detail,
    ))
    db.session.commit()
    if has_request_context():
        g.activity_recorded = True


def recorded_in_request() -> bool:
    """Whether this request has recorded an event so far."""
    return bool(g.get("activity_recorded"))


def record_call(action: str, outcome: str, target: str, detail: str) -> None:
    """The event of a request whose action recorded none; what a call that did not succeed
    left pending is not kept."""
    if outcome != "ok":
        db.session.rollback()
    record(action, printable(target), outcome=outcome, detail=detail)


def kind_of(action: str) -> str | None:
    """The kind of ``action`` (``backup`` for ``copy.delete``), None for none of KINDS."""
    family = action.split(".", 1)[0]
    return next((kind for kind, families in KINDS.items() if family in families), None)


def record_repeatable(action: str, kind: str, particulars: str, *, outcome: str,
                      actor: str) -> int:
    """Record an event that a client can repeat at will, with detail ``kind: particulars``;
    returns how often it has happened so far (its ``times``).

    A repeat from the same address, with the same actor, action, outcome and ``kind``,
    within REPEAT_WINDOW of the event it repeats, is counted on that event (its
    ``particulars`` stay the first one's): a flood from one address adds one event per
    window and kind, however many requests it makes.
    """
    source = request.remote_addr if has_request_context() else None
    repeated = db.session.scalars(select(ActivityEvent).where(
        ActivityEvent.action == action, ActivityEvent.actor == actor,
        ActivityEvent.outcome == outcome, ActivityEvent.source.is_not_distinct_from(source),
        ActivityEvent.detail.startswith(f"{kind}: ", autoescape=True),
        ActivityEvent.at > utcnow() - REPEAT_WINDOW,
    ).order_by(ActivityEvent.id.desc()).limit(1)).first()
    if repeated is None:
        record(action, outcome=outcome, detail=f"{kind}: {particulars}", actor=actor)
        return 1
    repeated.times = ActivityEvent.times + 1  # in SQL: concurrent repeats all count
    db.session.commit()
    return repeated.times  # read back after the commit


def printable(text: str, limit: int = SHORT) -> str:
    """A client's ``text`` for the log: printable ASCII, other characters and the backslash
    escaped (``\\x1b``, ``\\u202e``, ``\\\\``), cut to ``limit`` characters ending in ``...``."""
    escaped = "".join(char if " " <= char <= "~" and char != "\\"
                      else char.encode("unicode_escape").decode("ascii")
                      for char in text[:limit])
    if len(text) > limit or len(escaped) > limit:
        return escaped[:limit - 3] + "..."
    return escaped


def _request_actor() -> str:
    if has_request_context() and current_user and current_user.is_authenticated:
        # flask_login is untyped; the signed-in principal is a User or an ApiToken
        return cast(str, current_user.display_name)
    return "cli" if not has_request_context() else "anonymous"


def recent(limit: int = 50, filters: Filters | None = None) -> list[ActivityEvent]:
    """The newest ``limit`` events matching ``filters``, newest first."""
    query = _matching(filters or Filters())
    return list(db.session.scalars(
        query.order_by(ActivityEvent.at.desc(), ActivityEvent.id.desc()).limit(limit)))


def recent_actors() -> list[str]:
    """The actors of the ACTORS_FROM newest events, the latest first: the filter's hints."""
    newest = select(ActivityEvent.id, ActivityEvent.actor).order_by(
        ActivityEvent.id.desc()).limit(ACTORS_FROM).subquery()
    return list(db.session.scalars(select(newest.c.actor).group_by(newest.c.actor)
                                   .order_by(func.max(newest.c.id).desc())))


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
    if filters.kind is not None:
        query = query.where(or_(*(
            or_(ActivityEvent.action == family, ActivityEvent.action.startswith(f"{family}."))
            for family in KINDS[filters.kind])))
    return query


def as_dict(event: ActivityEvent) -> dict[str, Any]:
    values = {name: getattr(event, name) for name in EXPORT_FIELDS}
    values["at"] = iso(event.at)
    return values


def csv_lines(events: Iterable[ActivityEvent]) -> Iterator[str]:
    """A header, then one CSV line per event; formula-like cells are quoted with ``'``."""
    yield _csv_line(EXPORT_FIELDS)
    for item in events:
        yield _csv_line([_spreadsheet_safe(value) for value in as_dict(item).values()])


def json_lines(events: Iterable[ActivityEvent]) -> Iterator[str]:
    for item in events:
        yield json.dumps(as_dict(item)) + "\n"


def _csv_line(values: Iterable[str | int | None]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def _spreadsheet_safe(value: str | int | None) -> str | int | None:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@event.listens_for(Session, "before_flush")
def _refuse_changed_events(session: Session, _context: Any, _instances: Any) -> None:
    for instance in (*session.dirty, *session.deleted):
        if isinstance(instance, ActivityEvent) and (
                instance in session.deleted
                or (session.is_modified(instance) and not _counted_once_more(instance))):
            raise AppendOnlyError("the activity log is append-only")


def _counted_once_more(instance: ActivityEvent) -> bool:
    """The one change allowed: ``times = times + 1`` (in SQL), and nothing else."""
    state = inspect(instance)
    changed = [attribute.key for attribute in state.attrs if attribute.history.has_changes()]
    added = state.attrs.times.history.added
    return (changed == ["times"] and len(added) == 1 and isinstance(added[0], ColumnElement)
            and added[0].compare(ActivityEvent.times + 1))


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
            mapper.class_ is ActivityEvent for mapper in state.all_mappers):
        raise AppendOnlyError("the activity log is append-only")
