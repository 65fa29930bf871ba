"""Reading the audit trail (the activity log) back."""

from __future__ import annotations

from services import activity
from services.extensions import db
from services.models import ActivityEvent


def events(app, **filters) -> list[ActivityEvent]:
    with app.app_context():
        rows = activity.recent(1000, activity.Filters(**filters))
        db.session.expunge_all()
        return rows
