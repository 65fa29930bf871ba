"""Under /api/, an unknown path or a method a route does not take is answered with the
API's JSON error (``{"error": {"code", "message"}}``), never Werkzeug's HTML page."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Well-formed values for the routes' arguments: routing, not the view, answers a 405.
ARGUMENTS = {"backup_id": "backup-2024-01-15T10-30-00-000Z", "job_id": "somejob",
             "restore_id": "restore-2024-01-15T10-30-00-000Z", "destination": "local"}


def assert_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status, (response.request.method, response.request.path,
                                            response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]


UNKNOWN = ("/api/", "/api/nothing", "/api/system/nothing",
           "/api/system/backup/schedule/1/nothing", "/api/openapi.yaml")


def test_an_unknown_api_path_is_a_json_404(api):
    for path in UNKNOWN:
        for method in METHODS:
            assert_json_error(api.open(path, method=method), 404, "not_found")


def test_every_api_route_answers_a_method_it_does_not_take_with_a_json_405(app, api):
    allowed: dict[str, set[str]] = {}  # one rule per route decorator: a path may have several
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ARGUMENTS.get(m.group(1), "1"),
                          rule.rule)
            allowed.setdefault(path, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    tried = 0
    for path, methods in allowed.items():
        for method in sorted(set(METHODS) - methods):
            response = api.open(path, method=method)
            assert_json_error(response, 405, "method_not_allowed")
            assert set(response.headers["Allow"].split(", ")) >= methods
            tried += 1
    assert tried >= 60


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/nothing"),
                                              ("PATCH", "/api/system/backup")])
def test_without_credentials_they_are_a_json_401(client, method, path):
    assert_json_error(client.open(path, method=method), 401, "unauthorized")
