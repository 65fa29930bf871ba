"""A new install is calm: no backup yet is the first step (``setup``), not a critical
problem; red stays for real ones, and no alert fires for a first run."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from services import alerts
from services.extensions import db
from services.models import Backup
from tests.support.health import checks
from tests.support.web import BearerClient
from tests.support.workers import wait_for

PANEL = "/system/backup/monitoring/health"
REAL_PG_DUMP = shutil.which("pg_dump") or "pg_dump"
FAILING_PG_DUMP = f"""#!/bin/sh
case "$*" in *--version*) exec {REAL_PG_DUMP} "$@";; esac
echo "pg_dump: error: connection to server lost" >&2
exit 1
"""


@pytest.fixture
def api(app, api_token):
    """A client of its own with the bearer token: the htmx client's session cookie would
    take precedence over a token on the same client."""
    return BearerClient(app.test_client(), api_token)


def health(api) -> dict:
    response = api.get("/api/system/health")
    assert response.status_code == 200
    return response.get_json()


def page(htmx, href: str) -> str:
    """The whole page a link of the panel opens (a plain link: no HX-Request)."""
    response = htmx.client.get(href.split("#")[0])
    assert response.status_code == 200, href
    return response.get_data(as_text=True)


def by_name(body: dict) -> dict[str, dict]:
    return {check["name"]: check for check in body["checks"]}


def test_a_fresh_install_shows_first_steps_then_moves_on_after_a_backup(
        app, api, htmx, worker, scheduler):
    app.config.update(DISK_WARNING_PERCENT=100, DISK_CRITICAL_PERCENT=100)  # not under test

    body = health(api)
    assert body["status"] == "setup", body
    statuses = {check["name"]: check["status"] for check in body["checks"]}
    assert [name for name, status in statuses.items() if status != "ok"] == ["backup-age"]
    age = by_name(body)["backup-age"]
    assert age["status"] == "setup"
    assert age["data"]["firstSteps"] == {"backup": "todo", "schedule": "todo"}
    assert age["reason"].startswith("no full backup yet: this is a new install")
    assert "Troubleshooting: take the first backup: Backups → New backup" in age["reason"]
    assert "flask --app app backup create --type full --wait" in age["reason"]
    with app.app_context():
        assert alerts.evaluate() == []  # a first run is nothing to be alerted about

    panel = htmx.request("GET", PANEL).get_data(as_text=True)
    assert 'class="health-body health-setup"' in panel
    assert '<span class="health-status">Getting started</span>' in panel
    assert "Critical problem" not in panel and "health-problems" not in panel
    steps = re.search(r'<ol class="first-steps-list">(.*?)</ol>', panel, re.S).group(1)
    links = dict((text, href) for href, text in re.findall(
        r'<a class="btn[^"]*" href="([^"]+)">([^<]+)</a>', steps))
    assert links["Create your first backup"] == "/system/backup#new-backup"
    assert 'class="panel create-form"' in page(htmx, links["Create your first backup"])
    assert 'id="schedules"' in page(htmx, links["Set up a nightly schedule"])
    assert "1 setup · 9 ok" in panel

    backup_id = api.post("/api/system/backup", json={"type": "full"}).get_json()["backupId"]

    def verified() -> bool:
        with app.app_context():
            db.session.expire_all()
            return db.session.get(Backup, backup_id).verification == "valid"

    wait_for(verified)
    body = health(api)
    assert body["status"] == "ok", body
    age = by_name(body)["backup-age"]
    assert age["status"] == "ok" and "firstSteps" not in age["data"]
    assert age["data"]["full"]["backupId"] == backup_id
    panel = htmx.request("GET", PANEL).get_data(as_text=True)
    assert "All systems OK" in panel and "first-steps" not in panel


def test_the_steps_follow_a_queued_backup_and_a_schedule(app, api, run_worker):
    queued = api.post("/api/system/backup", json={"type": "full"})
    assert queued.status_code == 202
    age = checks(app)["backup-age"]
    assert age.status == "setup"
    assert age.reason.startswith("no full backup yet: the first one is queued")
    assert age.data["firstSteps"] == {"backup": "running", "schedule": "todo"}

    created = api.post("/api/system/backup/schedule", json={
        "name": "nightly", "type": "full", "frequency": "daily", "time": "02:00"})
    assert created.status_code == 201
    age = checks(app)["backup-age"]
    assert age.status == "setup"
    assert age.data["firstSteps"] == {"backup": "running", "schedule": "done"}
    assert "or wait for the schedule's first run" in age.reason

    run_worker()
    age = checks(app)["backup-age"]
    assert age.status == "ok" and "firstSteps" not in age.data


def test_the_panel_says_the_first_backup_is_on_its_way(api, htmx):
    assert api.post("/api/system/backup", json={"type": "full"}).status_code == 202
    panel = htmx.request("GET", PANEL).get_data(as_text=True)
    step = re.search(r'<li class="first-step first-step-running" data-step="backup">(.*?)</li>',
                     panel, re.S).group(1)
    assert "Your first backup is on its way" in step and "Create your first backup" not in step


def test_a_first_backup_that_failed_is_a_real_problem(app, api, run_worker, tmp_path,
                                                      monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_dump").write_text(FAILING_PG_DUMP)
    (bindir / "pg_dump").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert api.post("/api/system/backup", json={"type": "full"}).status_code == 202
    run_worker()
    age = checks(app)["backup-age"]
    assert age.status == "critical"
    assert age.reason.startswith("there is no good full backup at all")
    assert "Troubleshooting: take one now: Backups → New backup" in age.reason
    assert "firstSteps" not in age.data


def test_a_late_first_schedule_is_not_a_first_run_any_more(app, api):
    from datetime import UTC, datetime, timedelta

    api.post("/api/system/backup/schedule", json={
        "name": "nightly", "type": "full", "frequency": "daily", "time": "02:00"})
    later = checks(app, datetime.now(UTC) + timedelta(days=2))["backup-age"]
    assert later.status == "warning"
    assert "a schedule runs only while a scheduler and a worker" in later.reason
