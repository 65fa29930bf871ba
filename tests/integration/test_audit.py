"""The audit trail: token use, refusals, append-only storage, filtered streamed export."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from services import activity
from services.extensions import db
from services.models import ActivityEvent, ApiToken, utcnow
from tests.support.audit import events
from tests.support.auth import token_for
from tests.support.web import HtmxClient

ACTIVITY = "/api/system/activity"


def test_every_state_changing_token_call_is_recorded_with_its_outcome(app, client):
    token = token_for(app, "operator")
    headers = {"Authorization": f"Bearer {token}"}
    client.post("/api/system/backup", json={"type": "full"}, headers=headers)
    client.delete("/api/system/backup/backup-2024-01-15T10-30-00-000Z", headers=headers)
    client.post("/api/system/backup", json={"type": "nonsense"}, headers=headers)
    client.get("/api/system/backup", headers=headers)  # reads are not token.use events
    uses = [(e.outcome, e.detail) for e in reversed(events(app, action="token.use"))]
    assert uses == [
        ("ok", "POST /api/system/backup -> 202"),
        ("refused", "DELETE /api/system/backup/backup-2024-01-15T10-30-00-000Z -> 403"),
        ("failed", "POST /api/system/backup -> 400"),
    ]
    assert {e.target for e in events(app, action="token.use")} == {"operator-token"}
    refused = events(app, action="api.delete_backup")
    assert [(e.actor, e.outcome) for e in refused] == [("token:operator-token", "refused")]
    assert "needs a higher role than operator" in refused[0].detail
    created = events(app, action="backup.create")
    assert [e.actor for e in created] == ["token:operator-token"]
    assert all(e.source == "127.0.0.1" for e in events(app, actor="token:operator-token"))


def test_refused_tokens_are_recorded_without_the_token(app, client):
    token = token_for(app, "admin")
    with app.app_context():
        row = db.session.query(ApiToken).filter_by(name="admin-token").one()
        row.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    for bearer in (token, "pbm_not-a-real-token"):
        response = client.post("/api/system/backup", json={},
                               headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 401
    refused = [(e.actor, e.detail) for e in reversed(events(app, action="token.refused"))]
    assert refused == [("token:admin-token", "expired: POST /api/system/backup"),
                       ("anonymous", "unknown token: POST /api/system/backup")]
    assert not events(app, action="backup.create")
    with app.app_context():
        stored = " ".join(str(activity.as_dict(e)) for e in activity.recent(1000))
    assert token not in stored and "not-a-real-token" not in stored


def test_a_refused_dashboard_action_is_recorded_for_a_session_user(app, client):
    with app.app_context():
        from services.models import User

        viewer = User(username="vera", role="viewer")
        viewer.set_password("viewer password")
        db.session.add(viewer)
        db.session.commit()
    vera = HtmxClient(client, username="vera", password="viewer password")
    response = vera.request("POST", "/system/backup", data={"type": "full"})
    assert response.status_code == 403
    [event] = events(app, action="dashboard.create")
    assert (event.actor, event.outcome, event.target) == ("vera", "refused", "/system/backup")


def test_the_log_is_append_only_for_the_app(app):
    with app.app_context():
        activity.record("backup.create", "x", actor="cli")
        event = db.session.scalars(db.select(ActivityEvent)).first()
        event.outcome = "failed"
        with pytest.raises(activity.AppendOnlyError):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.get(ActivityEvent, event.id))
        with pytest.raises(activity.AppendOnlyError):
            db.session.commit()
        db.session.rollback()
        for statement in (update(ActivityEvent).values(outcome="failed"), delete(ActivityEvent)):
            with pytest.raises(activity.AppendOnlyError):
                db.session.execute(statement)
            db.session.rollback()
        assert [(e.action, e.outcome) for e in activity.recent()] == [("backup.create", "ok")]


def seed_events(app) -> None:
    now = utcnow()
    with app.app_context():
        for minutes, actor, action, outcome in (
                (30, "admin", "login", "ok"), (20, "=HYPERLINK(\"x\")", "login", "failed"),
                (10, "token:nightly", "backup.delete", "ok"), (5, "cli", "backup.create", "ok")):
            db.session.add(ActivityEvent(at=now - timedelta(minutes=minutes), actor=actor,
                                         action=action, outcome=outcome, target="t,\"quoted\""))
        db.session.commit()

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


def test_export_streams_csv_oldest_first_and_safe_for_spreadsheets(app, api):
    seed_events(app)
    response = api.get(f"{ACTIVITY}/export")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="activity-')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["action"] for row in rows] == [
        "login", "login", "backup.delete", "backup.create", "activity.export"]
    assert rows[1]["actor"] == "'=HYPERLINK(\"x\")"  # a formula would run in a spreadsheet
    assert rows[0]["target"] == 't,"quoted"'
    assert list(rows[0]) == list(activity.EXPORT_FIELDS)
    assert rows[-1]["actor"] == "token:tests"
    assert rows[-1]["detail"] == "csv; everything"


def test_export_filters_by_time_actor_action_and_outcome(app, api):
    seed_events(app)
    since = (utcnow() - timedelta(minutes=25)).isoformat() + "Z"
    until = (utcnow() - timedelta(minutes=7)).isoformat() + "Z"
    response = api.get(f"{ACTIVITY}/export", query_string={
        "format": "jsonl", "since": since, "until": until})
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [line["action"] for line in lines] == ["login", "backup.delete"]
    assert lines[0]["at"].endswith("Z")
    failed = api.get(f"{ACTIVITY}/export", query_string={"outcome": "failed", "format": "jsonl"})
    assert [json.loads(x)["actor"] for x in failed.get_data(as_text=True).splitlines()] == [
        '=HYPERLINK("x")']  # JSON Lines carries values as they are
    listed = api.get(ACTIVITY, query_string={"actor": "cli"}).get_json()["events"]
    assert [(e["actor"], e["action"]) for e in listed] == [("cli", "backup.create")]
    [export_event] = api.get(ACTIVITY, query_string={"action": "activity.export"}
                             ).get_json()["events"][:1]
    assert "outcome=failed" in export_event["detail"]


@pytest.mark.parametrize("query", [
    {"format": "xml"}, {"since": "yesterday"}, {"outcome": "maybe"}, {"actor": ""},
    {"limit": "0"}, {"unknown": "1"},  # the export takes no limit: it is a 400 there too
])
def test_bad_export_and_list_queries_are_400(app, api, query):
    for path in (f"{ACTIVITY}/export", ACTIVITY):
        response = api.get(path, query_string=query)
        assert response.status_code == 400, (path, query)
        assert response.get_json()["error"]["code"] == "invalid_request"
    assert not events(app, action="activity.export")


def test_only_admins_export(app, client):
    for role in ("viewer", "operator"):
        headers = {"Authorization": f"Bearer {token_for(app, role)}"}
        assert client.get(f"{ACTIVITY}/export", headers=headers).status_code == 403
