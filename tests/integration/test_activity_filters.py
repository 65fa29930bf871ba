"""The activity log's filters (kind, actor, outcome) in the API, its exports and the
dashboard panel; and every state-changing endpoint named as an action of some kind."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from blueprints.audit import ENDPOINT_ACTIONS, outcome_of
from services import activity
from services.extensions import db
from services.models import ActivityEvent, utcnow
from tests.support.web import HX, login

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data

ACTIVITY = "/api/system/activity"
PANEL = "/system/backup/monitoring/activity"
SEEDED = (  # actor, action, outcome; oldest first
    ("admin", "login", "ok"),
    ("token:nightly", "backup.create", "ok"),
    ("token:nightly", "backup.verify", "conflict"),
    ("retention", "copy.delete", "ok"),
    ("worker", "slot.drop", "failed"),
    ("vera", "schedule.delete", "refused"),
    ("token:nightly", "schedule.create", "invalid"),
    ("admin", "user.role", "ok"),
    ("admin", "destinations.rescan.start", "ok"),
)


@pytest.fixture
def seeded(app) -> None:
    now = utcnow()
    with app.app_context():
        for age, (actor, action, outcome) in enumerate(reversed(SEEDED), start=1):
            db.session.add(ActivityEvent(at=now - timedelta(minutes=age), actor=actor,
                                         action=action, outcome=outcome, target="t"))
        db.session.commit()


def listed(api, **query) -> list[tuple[str, str, str]]:
    response = api.get(ACTIVITY, query_string=query)
    assert response.status_code == 200, response.get_json()
    return [(e["actor"], e["action"], e["outcome"]) for e in response.get_json()["events"]]


def newest_first(keep) -> list[tuple[str, str, str]]:
    return [event for event in reversed(SEEDED) if keep(*event)]


def test_the_api_filters_by_kind_actor_and_outcome(api, seeded):
    assert listed(api, kind="backup") == newest_first(
        lambda _, action, __: action.split(".")[0] in ("backup", "copy", "slot"))
    assert listed(api, kind="user") == newest_first(
        lambda _, action, __: action in ("login", "user.role"))
    assert listed(api, kind="destination") == [("admin", "destinations.rescan.start", "ok")]
    assert listed(api, outcome="conflict") == [("token:nightly", "backup.verify", "conflict")]
    assert listed(api, kind="schedule", actor="token:nightly") == [
        ("token:nightly", "schedule.create", "invalid")]
    assert listed(api, kind="backup", actor="token:nightly", outcome="ok") == [
        ("token:nightly", "backup.create", "ok")]
    assert listed(api, kind="restore") == []


def test_the_export_honors_the_same_filters(api, seeded):
    response = api.get(f"{ACTIVITY}/export", query_string={
        "format": "jsonl", "kind": "backup", "outcome": "ok"})
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [(line["actor"], line["action"]) for line in lines] == [
        ("token:nightly", "backup.create"), ("retention", "copy.delete")]
    [exported] = listed(api, kind="activity")
    assert exported == ("token:tests", "activity.export", "ok")
    detail = api.get(ACTIVITY, query_string={"kind": "activity"}).get_json()["events"][0]
    assert detail["detail"] == "jsonl; outcome=ok, kind=backup"


@pytest.mark.parametrize("query", [{"kind": "settings"}, {"kind": "Backup"},
                                   {"outcome": "refused,ok"}, {"actor": "x" * 81}])
def test_a_bad_filter_is_a_400_naming_it(api, query):
    for path in (ACTIVITY, f"{ACTIVITY}/export"):
        response = api.get(path, query_string=query)
        assert response.status_code == 400, (path, query)
        error = response.get_json()["error"]
        assert error["code"] == "invalid_request"
        assert next(iter(query)) in error["message"]


def test_the_dashboard_panel_filters_and_keeps_its_filters(client, seeded):
    login(client)
    html = client.get(PANEL, query_string={"kind": "backup", "actor": " ", "outcome": "ok"},
                      headers=HX).get_data(as_text=True)
    rows = re.findall(r'<td class="activity-actor" data-label="Who">([^<]*)</td>', html)
    assert rows == ["retention", "token:nightly"]
    assert "The last 2 events that match, newest first." in html
    # Its refresh and its export links keep the filters; the empty actor is no filter.
    assert f'hx-get="{PANEL}?limit=20&amp;outcome=ok&amp;kind=backup"' in html
    assert 'href="/api/system/activity/export?format=csv&amp;outcome=ok&amp;kind=backup"' in html
    assert '<option value="backup" selected>Backups</option>' in html
    assert '<option value="ok" selected>ok</option>' in html
    assert '<option value="token:nightly"></option>' in html  # the actor hints

    conflicts = client.get(PANEL, query_string={"outcome": "conflict"}).get_data(as_text=True)
    assert conflicts.count('class="activity-row') == 1
    assert "The last event that matches, newest first." in conflicts
    assert '<span class="mbadge mbadge-conflict">conflict</span>' in conflicts
    nothing = client.get(PANEL, query_string={"kind": "restore"}).get_data(as_text=True)
    assert "No event matches these filters." in nothing


def test_the_panel_shows_a_page_of_events_and_more_on_request(app, client):
    now = utcnow()
    with app.app_context():
        db.session.add_all(ActivityEvent(at=now - timedelta(seconds=age), actor="cli",
                                         action="backup.create", outcome="ok", target=str(age))
                           for age in range(45))
        db.session.commit()
    login(client)
    first = client.get(PANEL, headers=HX).get_data(as_text=True)
    # 20 of the 45 events (and the login's), newest first, and a button for 20 more.
    assert first.count('class="activity-row') == 20
    assert f'hx-get="{PANEL}?limit=40"' in first and ">Show more</button>" in first
    more = client.get(PANEL, query_string={"limit": 40}, headers=HX).get_data(as_text=True)
    assert more.count('class="activity-row') == 40
    assert f'hx-get="{PANEL}?limit=40"' in more  # its refresh keeps the longer list
    last = client.get(PANEL, query_string={"limit": 60}, headers=HX).get_data(as_text=True)
    assert last.count('class="activity-row') == 46 and "Show more" not in last


def test_a_bad_filter_in_the_panel_is_a_400_shown_in_the_panel(client, seeded):
    login(client)
    response = client.get(PANEL, query_string={"kind": "settings"}, headers=HX)
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#activity"
    assert response.headers["HX-Reswap"] == "outerHTML"
    html = response.get_data(as_text=True)
    assert "These filters cannot be used: kind: Input should be" in html
    assert 'class="activity-row' not in html


def test_every_state_changing_endpoint_is_an_action_of_a_kind(app):
    changing = {rule.endpoint for rule in app.url_map.iter_rules()
                if rule.methods - {"GET", "HEAD", "OPTIONS"}}
    assert changing == set(ENDPOINT_ACTIONS)  # none missing, none stale
    assert {action: activity.kind_of(action) for action in ENDPOINT_ACTIONS.values()
            if activity.kind_of(action) is None} == {}


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "ok"), (202, "ok"), (302, "ok"), (400, "invalid"), (401, "refused"),
    (403, "refused"), (404, "invalid"), (409, "conflict"), (423, "conflict"),
    (429, "refused"), (500, "failed"), (503, "failed"),
])
def test_a_status_means_one_outcome_of_the_fixed_set(status, outcome):
    assert outcome_of(status) == outcome
    assert outcome in activity.OUTCOMES
