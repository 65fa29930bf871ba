"""Destinations in the dashboard, driven as htmx drives them: the panel with each
destination's health, its probe, a rescan with its report, the destinations of a new
backup and of a schedule, and Retry on a failed copy."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from services.extensions import db
from services.models import Backup, Schedule

BASE = "/system/backup/destinations"
DESTINATIONS = "/api/system/destinations"


def text(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


@pytest.fixture
def api(app, api_token):
    """A client of its own for the API, beside the dashboard's logged-in session."""
    client, headers = app.test_client(), {"Authorization": f"Bearer {api_token}"}

    class Api:
        def post(self, path: str, **kwargs):
            return client.post(path, headers=headers, **kwargs)

    return Api()


@pytest.fixture
def nas(api, tmp_path: Path) -> Path:
    path = tmp_path / "nas"
    path.mkdir()
    created = api.post(DESTINATIONS, json={"name": "nas", "type": "local", "path": str(path),
                                           "required": False, "retention": {"days": 90}})
    assert created.status_code == 201, created.get_json()
    return path


def test_a_new_backup_goes_where_its_boxes_say_and_the_panel_counts_it(
        app, htmx, run_worker, nas):
    page = text(htmx.request("GET", "/system/backup"))
    assert 'name="destinations" value="local" checked' in page  # DEFAULT_DESTINATIONS
    assert 'name="destinations" value="nas" >' in page

    created = htmx.request("POST", "/system/backup",
                           data={"type": "full", "compress": "on", "destinations": ["nas"]})
    assert created.status_code == 200
    run_worker()
    with app.app_context():
        [backup] = db.session.query(Backup).all()
        assert [copy.destination for copy in backup.copies] == ["nas"]
        size = backup.size

    panel = text(htmx.request("GET", BASE))
    row = re.search(r'<tr id="destination-nas".*?</tr>', panel).group(0)
    assert "local · optional · keeps 90 days" in row
    assert str(nas) in row and "1 · " in row and "none yet" not in row
    assert f"{size / 1024:.1f} KiB" in row or f"{size} bytes" in row
    local = re.search(r'<tr id="destination-local".*?</tr>', panel).group(0)
    assert "0 · " in local and "none yet" in local

    probe = text(htmx.request("POST", f"{BASE}/0/test"))
    assert "✓ wrote, read back and deleted 4096 bytes" in probe


def test_a_failed_copy_is_shown_and_retried_from_the_card(app, htmx, api, run_worker, nas):
    app.config["COPY_RETRY_INTERVALS"] = ()  # no automatic retry: the button is the retry
    nas.rmdir()  # the NAS is not mounted: its directory is not made on the root disk
    created = htmx.request("POST", "/system/backup", data={
        "type": "full", "compress": "on", "destinations": ["local", "nas"]})
    assert created.status_code == 200
    run_worker()
    assert not nas.exists()
    nas.mkdir()  # the NAS is back
    with app.app_context():
        [backup] = db.session.query(Backup).all()
        assert backup.status == "completed", backup.error
    card = text(htmx.request("GET", f"/system/backup/backups/{backup.id}"))  # its detail
    assert re.search(r'copy-failed"> <b>nas</b> <span class="tag">failed</span>', card)
    retried = text(htmx.request(
        "POST", f"/system/backup/{backup.id}/copies/nas/retry"))
    assert re.search(r'<b>nas</b> <span class="tag">retrying</span>', retried)
    run_worker()
    card = text(htmx.request("GET", f"/system/backup/backups/{backup.id}"))
    assert re.search(r'<b>nas</b> <span class="tag">stored</span>', card)
    assert (nas / f"{backup.id}.dump.zst").is_file()


def test_a_rescan_from_the_panel_reports_what_it_found(app, htmx, api, run_worker, nas):
    backup_id = api.post("/api/system/backup", json={"type": "full", "destinations": ["nas"]}
                         ).get_json()["backupId"]
    run_worker()
    with app.app_context():
        db.session.delete(db.session.get(Backup, backup_id))
        db.session.commit()

    started = text(htmx.request("POST", f"{BASE}/rescan", data={"destination": "nas"}))
    job_id = re.search(r'hx-get="/system/backup/destinations/rescan/([^"]+)"', started).group(1)
    assert "Rescan queued" in started
    run_worker()
    report = text(htmx.request("GET", f"{BASE}/rescan/{job_id}"))
    assert "Rescan done: 1 manifests found on nas; 1 backups imported" in re.sub(
        r"</?b>", "", report)
    assert "hx-trigger" not in report  # it stops polling
    with app.app_context():
        assert db.session.get(Backup, backup_id) is not None


def test_a_schedule_form_names_its_destinations(app, htmx, nas):
    form = {"name": "offsite nightly", "type": "full", "frequency": "daily", "time": "02:00",
            "timezone": "UTC", "retention": "90", "keepAtLeast": "1", "verify": "integrity",
            "enabled": "on", "destinations": ["nas"]}
    listed = text(htmx.request("POST", "/system/backup/schedules", data=form))
    assert "<dt>Copies to</dt><dd>nas</dd>" in listed.replace("> <", "><")
    with app.app_context():
        [schedule] = db.session.query(Schedule).all()
        assert schedule.destinations == ["nas"]
    edit = text(htmx.request("GET", f"/system/backup/schedules/{schedule.id}/edit"))
    assert 'name="destinations" value="nas" checked' in edit
    del form["destinations"]
    card = text(htmx.request("PUT", f"/system/backup/schedules/{schedule.id}", data=form))
    assert "<dt>Copies to</dt><dd>local (default)</dd>" in card.replace("> <", "><")


def test_the_panel_is_for_admins(app, client):
    from services import accounts

    with app.app_context():
        accounts.create_user("olga", "operator", "operator-password-1")
    from tests.support.web import HtmxClient

    operator = HtmxClient(client, "olga", "operator-password-1")
    assert operator.request("GET", BASE).status_code == 403
    assert operator.request("GET", "/system/backup/section/settings").status_code == 403
