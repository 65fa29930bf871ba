"""The audit trail: one event per token call, refusals, append-only storage, filtered
streamed export."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from services import activity
from services.extensions import db
from services.models import ActivityEvent, ApiToken, Backup, utcnow
from tests.support.audit import events
from tests.support.auth import token_for
from tests.support.web import HtmxClient

ACTIVITY = "/api/system/activity"


def test_a_token_call_that_creates_a_backup_is_one_event_and_reads_none(app, client):
    token = token_for(app, "operator")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/system/backup", json={"type": "full"},
                       headers=headers).status_code == 202
    assert client.get("/api/system/backup", headers=headers).status_code == 200
    [event] = events(app)
    assert (event.actor, event.action, event.outcome, event.source) == (
        "token:operator-token", "backup.create", "ok", "127.0.0.1")
    with app.app_context():
        row = db.session.query(ApiToken).filter_by(name="operator-token").one()
        # noted by the POST; the GET, within the same minute, writes nothing
        assert row.last_used_at is not None and row.last_used_at <= event.at


def test_a_token_call_is_one_event_with_the_outcome_its_status_means(app, client):
    headers = {"Authorization": f"Bearer {token_for(app, 'operator')}"}
    queued = client.post("/api/system/backup", json={"type": "full"}, headers=headers)
    backup_id = queued.get_json()["backupId"]
    not_yet = client.post("/api/system/backup/verify", json={"backupId": backup_id},
                          headers=headers)
    assert not_yet.status_code == 409  # queued: nothing to verify yet
    assert client.delete(f"/api/system/backup/{backup_id}", headers=headers).status_code == 403
    assert client.post("/api/system/backup", json={"type": "nonsense"},
                       headers=headers).status_code == 400
    logged = [(e.action, e.outcome, e.target, e.detail) for e in reversed(events(app))]
    assert logged == [
        ("backup.create", "ok", backup_id, "full, origin manual"),
        ("backup.verify", "conflict", "/api/system/backup/verify",
         "POST -> 409 backup_not_completed"),
        ("backup.delete", "refused", f"/api/system/backup/{backup_id}",
         "DELETE needs a higher role than operator"),
        ("backup.create", "invalid", "/api/system/backup", "POST -> 400 invalid_request"),
    ]
    assert {e.actor for e in events(app)} == {"token:operator-token"}
    with app.app_context():  # the refused and invalid calls left nothing behind
        assert [b.id for b in db.session.query(Backup)] == [backup_id]


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
    [event] = events(app, action="backup.create")  # the action's name, not the endpoint's
    assert (event.actor, event.outcome, event.target) == ("vera", "refused", "/system/backup")


def test_a_dashboard_action_in_conflict_is_one_event(app, client):
    """Like a token's call, a 409 is logged with its outcome; an invalid form is not (the
    page tells the user, as the account and users pages do)."""
    admin = HtmxClient(client)
    assert admin.request("POST", "/system/backup", data={"type": "full"}).status_code == 200
    [created] = events(app, action="backup.create")
    backup_id = created.target
    not_yet = admin.request("POST", f"/system/backup/{backup_id}/verify")
    assert not_yet.status_code == 409
    assert admin.request("POST", "/system/backup", data={"type": "nonsense"}).status_code == 400
    logged = [(e.actor, e.action, e.outcome, e.detail) for e in reversed(events(app))
              if e.action != "login"]
    assert logged == [
        ("admin", "backup.create", "ok", "full, origin manual"),
        ("admin", "backup.verify", "conflict", "POST -> 409"),
    ]


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
    {"kind": "backups"}, {"kind": ""}, {"outcome": "REFUSED"},
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
