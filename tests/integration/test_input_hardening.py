"""Hostile input never reaches a view as a 500: ids are checked by URL converters, JSON
bodies by one parser (no deep nesting, no duplicate keys), names refuse control characters."""

from __future__ import annotations

import html
import re

import pytest

from tests.support.web import HtmxClient

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data

BAD_IDS = ("%00", "x.dump.zst", "%C3%A9t%C3%A9", "a:b", "%0A")
BAD_BY_KIND = {"backup_id": ("backup-x", "backup-2024-01-15T10-30-00-000Z.dump"),
               "restore_id": ("restore-x",), "job_id": ("j" * 129,)}
DEEP_BODIES = ("[" * 100_000, '{"a":' * 5000 + "1" + "}" * 5000)
BAD_NAMES = ("nightly\x00", "a\nb", "tab\there", "bell\x07", "del\x7f", "rtl\u202eevil",
             "line\u2028sep")


@pytest.fixture
def htmx(app) -> HtmxClient:
    """A browser of its own: the ``api`` fixture's client sends a bearer token."""
    return HtmxClient(app.test_client())


def backup_id(api) -> str:
    return api.post("/api/system/backup", json={"type": "full"}).get_json()["backupId"]


def channel_id(api) -> int:
    body = {"name": "ops", "kind": "webhook", "config": {"url": "https://example.com/hook"}}
    return api.post("/api/system/notifications/channels", json=body).get_json()["id"]


def schedule_id(api) -> int:
    body = {"name": "nightly", "frequency": "daily", "time": "02:00"}
    return api.post("/api/system/backup/schedule", json=body).get_json()["id"]


def raw_json(api, method: str, path: str, body: str):
    return getattr(api, method)(path, data=body, headers={"Content-Type": "application/json"})


# ---- ids ------------------------------------------------------------------------------------

def test_every_route_checks_its_ids_with_a_converter(app):
    checked = 0
    for rule in app.url_map.iter_rules():
        for argument in rule.arguments & BAD_BY_KIND.keys():
            assert f"<{argument}:{argument}>" in rule.rule, rule.rule
            checked += 1
    assert checked >= 12


def test_a_malformed_id_in_any_route_is_a_404_never_a_500(app, api, htmx):
    good = {"backup_id": backup_id(api), "job_id": "somejob",
            "restore_id": "restore-2024-01-15T10-30-00-000Z"}
    tried = 0
    for rule in app.url_map.iter_rules():
        for argument in rule.arguments & BAD_BY_KIND.keys():
            for bad in (*BAD_IDS, *BAD_BY_KIND[argument]):
                path = rule.rule
                for name in rule.arguments:
                    value = bad if name == argument else good.get(name, "1")
                    path = re.sub(rf"<(?:[a-z_]+:)?{name}>", value, path)
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    if path.startswith("/api/"):
                        response = api.open(path, method=method)
                        assert response.status_code == 404, (method, path)
                        assert response.get_json()["error"]["code"] == "not_found"
                    else:
                        response = htmx.request(method, path)
                        assert response.status_code == 404, (method, path)
                    tried += 1
    assert tried >= 60


def test_the_verification_fragment_with_a_storage_name_for_a_job_is_a_404(api, htmx):
    backup = backup_id(api)
    for job in ("x.dump.zst", "%00", "%C3%A9t%C3%A9"):
        response = htmx.request("GET", f"/system/backup/{backup}/verification/{job}")
        assert response.status_code == 404, job


def test_well_formed_ids_still_reach_their_views(api):
    backup = backup_id(api)
    assert api.get(f"/api/system/backup/{backup}").status_code == 200
    assert api.get(f"/api/system/jobs/{backup}").get_json()["backupId"] == backup
    unreal = api.get("/api/system/backup/backup-2024-13-45T10-30-00-000Z")  # no such time
    assert unreal.status_code == 404
    assert unreal.get_json()["error"]["code"] == "not_found"
    missing = api.get("/api/system/backup/restore/restore-2024-01-15T10-30-00-000Z")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"


# ---- JSON bodies ----------------------------------------------------------------------------

def test_deeply_nested_json_is_a_400_on_every_json_endpoint(api):
    channel, schedule = channel_id(api), schedule_id(api)
    endpoints = [("post", "/api/system/backup"), ("post", "/api/system/backup/verify"),
                 ("post", "/api/system/backup/restore"),
                 ("post", "/api/system/backup/schedule"),
                 ("put", f"/api/system/backup/schedule/{schedule}"),
                 ("post", "/api/system/notifications/channels"),
                 ("put", f"/api/system/notifications/channels/{channel}")]
    for method, path in endpoints:
        for body in DEEP_BODIES:
            response = raw_json(api, method, path, body)
            assert response.status_code == 400, (method, path)
            error = response.get_json()["error"]
            assert error["code"] == "invalid_json"
            assert "nested" in error["message"]


def test_a_duplicate_key_is_refused_and_named(api):
    response = raw_json(api, "post", "/api/system/backup",
                        '{"type": "full", "type": "schema-only"}')
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_json"
    assert "duplicate key 'type'" in error["message"]
    nested = raw_json(api, "post", "/api/system/notifications/channels",
                      '{"name": "ops", "kind": "webhook", "config": '
                      '{"url": "https://a.example", "url": "https://b.example"}}')
    assert nested.status_code == 400
    assert "duplicate key 'url'" in nested.get_json()["error"]["message"]


def test_valid_json_still_works(api):
    response = raw_json(api, "post", "/api/system/backup", '{"type": "schema-only"}')
    assert response.status_code == 202
    not_json = raw_json(api, "post", "/api/system/backup", "{not json")
    assert not_json.get_json()["error"]["code"] == "invalid_json"
    assert api.post("/api/system/backup", data="type=full").status_code == 400


# ---- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BAD_NAMES)
def test_api_names_with_control_characters_are_refused(api, name):
    schedule = {"name": name, "frequency": "daily", "time": "02:00"}
    response = api.post("/api/system/backup/schedule", json=schedule)
    assert response.status_code == 400, name
    assert "control character" in response.get_json()["error"]["message"]
    existing = schedule_id(api)
    renamed = api.put(f"/api/system/backup/schedule/{existing}", json={"name": name})
    assert renamed.status_code == 400
    channel = {"name": name, "kind": "webhook", "config": {"url": "https://example.com/h"}}
    response = api.post("/api/system/notifications/channels", json=channel)
    assert response.status_code == 400
    assert "control character" in response.get_json()["error"]["message"]
    assert api.get("/api/system/backup/schedule").get_json()["schedules"][0]["name"] == "nightly"
    assert api.get("/api/system/notifications/channels").get_json()["channels"] == []


def test_names_with_letters_of_any_script_are_still_fine(api):
    body = {"name": "Sauvegarde d'été 夜間 🌙", "frequency": "daily", "time": "02:00"}
    assert api.post("/api/system/backup/schedule", json=body).status_code == 201


def test_dashboard_forms_refuse_control_characters_readably(app, htmx):
    schedule = {"name": "night\x00ly", "type": "full", "frequency": "daily", "time": "02:00",
                "timezone": "UTC", "retention": "7", "keepAtLeast": "1", "verify": "none",
                "enabled": "on"}
    refused = htmx.request("POST", "/system/backup/schedules", data=schedule)
    assert refused.status_code == 400
    assert "control character" in html.unescape(refused.get_data(as_text=True))
    channel = {"kind": "webhook", "name": "ops\u2028x", "url": "https://example.com/h",
               "enabled": "on"}
    refused = htmx.request("POST", "/system/backup/monitoring/channels", data=channel)
    assert refused.status_code == 400
    assert "control character" in html.unescape(refused.get_data(as_text=True))
    for path, data in (("/system/backup/users", {"username": "bob\x00", "role": "viewer",
                                                  "password": "a long enough password"}),
                       ("/system/backup/users/tokens", {"name": "ci\x1b[31m", "role": "viewer",
                                                        "expires_in_days": "30"})):
        refused = htmx.request("POST", path, data=data)
        assert refused.status_code == 400, path
        assert "letters, digits" in html.unescape(refused.get_data(as_text=True))
