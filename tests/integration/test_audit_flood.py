"""A client cannot grow the activity log at will: a refused token that repeats from one
address is counted on the event it repeats, and the path it tried is kept short and
printable. Counting is the one change the append-only log allows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services import accounts, activity
from services.extensions import db
from services.models import ActivityEvent
from tests.support.audit import events
from tests.support.web import login

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data

BOGUS = {"Authorization": "Bearer pbm_bogus"}


def test_a_flood_of_bogus_tokens_adds_a_handful_of_events_that_count_it(app, client):
    codes = []
    for n in range(300):
        path = f"/api/system/backup/{'x' * 2000}-{n}" if n % 2 else "/api/system/backup"
        codes.append(client.post(path, json={}, headers=BOGUS).status_code)
    limit = accounts.REFUSED_TOKENS_PER_WINDOW  # then the address is told to slow down
    assert codes == [401] * limit + [429] * (300 - limit)
    slow_down = client.get("/api/system/backup", headers=BOGUS)
    assert slow_down.get_json()["error"]["code"] == "rate_limited"
    assert int(slow_down.headers["Retry-After"]) > 0
    refused = events(app, action="token.refused")
    assert len(refused) <= 3
    assert sum(event.times for event in refused) == 301
    assert refused[-1].detail == "unknown token: POST /api/system/backup"  # the first one
    login(client)
    panel = client.get("/system/backup/monitoring/activity").get_data(as_text=True)
    assert '<span class="activity-times">\u00d7' in panel


def test_each_address_and_token_is_counted_apart(app, client):
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        client.get("/api/system/backup", headers=BOGUS, environ_base={"REMOTE_ADDR": address})
    counted = {(e.source, e.actor, e.times) for e in events(app, action="token.refused")}
    assert counted == {("10.0.0.1", "anonymous", 2), ("10.0.0.2", "anonymous", 1)}


def test_after_the_window_a_repeat_is_a_new_event(app, client, monkeypatch):
    monkeypatch.setattr(activity, "REPEAT_WINDOW", activity.REPEAT_WINDOW * 0)
    for _ in range(2):
        client.get("/api/system/backup", headers=BOGUS)
    assert [e.times for e in events(app, action="token.refused")] == [1, 1]


def test_the_path_tried_is_short_and_printable(app, client):
    client.get("/api/\x1b[2J\u202e\\" + "é" * 300, headers=BOGUS)
    [event] = events(app, action="token.refused")
    path = event.detail.removeprefix("unknown token: GET ")
    assert len(path) <= 100 and path.endswith("...")
    assert path.startswith("/api/\\x1b[2J\\u202e\\\\\\xe9")
    assert all(" " <= char <= "~" for char in event.detail)


def test_counting_is_the_only_change_the_log_allows(app):
    with app.app_context():
        activity.record("token.refused", outcome="refused", actor="anonymous", detail="x")
        event = db.session.scalars(select(ActivityEvent)).one()
        event.times = ActivityEvent.times + 1
        db.session.commit()
        assert db.session.get(ActivityEvent, event.id).times == 2
        for change in ({"times": 1000}, {"times": ActivityEvent.times + 2},
                       {"times": ActivityEvent.times + 1, "detail": "y"}):
            for name, value in change.items():
                setattr(event, name, value)
            with pytest.raises(activity.AppendOnlyError):
                db.session.flush()
            db.session.rollback()
