"""The activity log: who did what, when, from where, and how it went.

Service functions call :func:`record` after a state change; the actor is the logged-in
user or token inside a request, else what the caller names (worker, scheduler, cli).
"""

from __future__ import annotations

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import select

from extensions import db
from models import ActivityEvent


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


def recent(limit: int = 50) -> list[ActivityEvent]:
    return list(db.session.scalars(
        select(ActivityEvent).order_by(ActivityEvent.at.desc(), ActivityEvent.id.desc())
        .limit(limit)))
