"""A backup whose files left BACKUP_DIR (or whose artifact changed size) says ``missing``
wherever it is shown, is never restored, and turns valid again once its files are back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from pgbackup import artifact_name, manifest_name, new_backup_id
from services.extensions import db
from services.models import Backup, utcnow
from tests.support.web import HtmxClient


def make_backup(api, run_worker) -> str:
    """A real full backup of Pagila, completed and verified by an in-process worker."""
    response = api.post("/api/system/backup", json={"type": "full"})
    assert response.status_code == 202
    run_worker()
    return response.get_json()["backupId"]


def add_backup(app, age: timedelta = timedelta(0)) -> tuple[str, Path]:
    """A completed, valid catalog row with an artifact and a manifest on disk (not a real
    dump: only their presence and size are looked at here); returns its id and artifact."""
    finished = utcnow() - age
    backup_id = new_backup_id(finished.replace(tzinfo=UTC))
    directory = Path(app.config["BACKUP_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    artifact = directory / artifact_name(backup_id, compressed=True)
    artifact.write_bytes(b"x" * 1000)
    (directory / manifest_name(backup_id)).write_text("{}")
    with app.app_context():
        db.session.add(Backup(
            id=backup_id, database=app.config["TARGET_DATABASE"], type="full",
            status="completed", filename=artifact.name, size=1000, verification="valid",
            created_at=finished, started_at=finished, finished_at=finished))
        db.session.commit()
    return backup_id, artifact


def listed(api, backup_id: str) -> dict:
    [row] = [row for row in api.get("/api/system/backup").get_json()["backups"]
             if row["id"] == backup_id]
    return row


def missing_events(api) -> list[dict]:
    return api.get("/api/system/activity?action=backup.missing").get_json()["events"]


def test_a_deleted_artifact_is_missing_cannot_be_restored_and_is_valid_once_back(
        app, api, run_worker):
    backup_id = make_backup(api, run_worker)
    assert listed(api, backup_id)["verification"] == "valid"
    artifact = Path(app.config["BACKUP_DIR"]) / artifact_name(backup_id, compressed=True)
    saved = artifact.read_bytes()
    artifact.unlink()

    assert listed(api, backup_id)["verification"] == "missing"
    detail = api.get(f"/api/system/backup/{backup_id}").get_json()
    assert detail["status"] == "completed" and detail["verification"] == "missing"
    assert detail["verificationResult"]["checks"] == [{
        "name": "artifact-exists", "ok": False,
        "detail": f"the artifact {artifact.name} is missing from BACKUP_DIR"}]
    assert listed(api, backup_id)["verification"] == "missing"
    [event] = missing_events(api)  # once, however often it is shown
    assert event["target"] == backup_id and event["outcome"] == "failed"

    for body in ({"backupId": backup_id, "dryRun": True},
                 {"backupId": backup_id, "targetDatabase": "from_missing"},
                 {"backupId": backup_id, "confirmDataLoss": True}):
        refused = api.post("/api/system/backup/restore", json=body)
        assert refused.status_code == 409, body
        error = refused.get_json()["error"]
        assert error["code"] == "backup_missing"
        assert f"the artifact {artifact.name} is missing from BACKUP_DIR" in error["message"]

    artifact.write_bytes(saved)  # put back by hand: a verification finds it whole again
    response = api.post("/api/system/backup/verify", json={"backupId": backup_id})
    assert response.status_code == 202
    run_worker()
    assert listed(api, backup_id)["verification"] == "valid"
    assert len(missing_events(api)) == 1


BREAKAGES: dict[str, Callable[[Path], None]] = {
    "manifest": lambda artifact: artifact.with_name(
        artifact.name.replace(".dump.zst", ".manifest.json")).unlink(),
    "size": lambda artifact: artifact.write_bytes(artifact.read_bytes() + b"x"),
}

@pytest.mark.parametrize(("check", "state"), [("manifest", "missing"), ("size", "corrupted")])
def test_a_missing_manifest_is_missing_and_a_resized_artifact_corrupted(app, api, check, state):
    backup_id, artifact = add_backup(app)
    BREAKAGES[check](artifact)
    [failed] = api.get(f"/api/system/backup/{backup_id}").get_json()[
        "verificationResult"]["checks"]
    assert failed["name"] == check and not failed["ok"]
    assert {"manifest": "manifest", "size": "1001 bytes"}[check] in failed["detail"]
    assert listed(api, backup_id)["verification"] == state


def test_health_does_not_count_a_missing_backup_and_names_it(app, api):
    older, _ = add_backup(app, age=timedelta(hours=2))
    newer, artifact = add_backup(app, age=timedelta(hours=1))
    artifact.unlink()

    checks = {check["name"]: check for check in api.get("/api/system/health").get_json()[
        "checks"]}
    age = checks["backup-age"]
    assert age["status"] == "warning"
    assert age["data"]["full"]["backupId"] == older
    assert age["data"]["full"]["missing"] == [newer]
    assert (f"1 newer full backup missing (the artifact {artifact.name} is missing from "
            "BACKUP_DIR)") in age["reason"]
    assert "put a missing backup's files back" in age["reason"]
    with app.app_context():
        assert db.session.get(Backup, newer).verification == "missing"
    assert [event["target"] for event in missing_events(api)] == [newer]


def test_the_dashboard_card_says_missing_and_offers_no_restore(app, client):
    backup_id, artifact = add_backup(app)
    artifact.unlink()
    htmx = HtmxClient(client)
    html = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    row = html[html.index(f'id="backup-{backup_id}"'):]
    assert 'class="vbadge vbadge-missing">Missing<' in row
    assert "Restore…" not in row
    detail = htmx.request("GET", f"/system/backup/backups/{backup_id}").get_data(as_text=True)
    assert "is missing from BACKUP_DIR" in detail and "Restore…" not in detail


def test_an_unmounted_backup_dir_marks_nothing_missing(app, api):
    """Every file gone at once (an empty or absent BACKUP_DIR) is more likely a disk that
    is not mounted than every backup lost: nothing is marked missing."""
    backup_id, artifact = add_backup(app)
    before = listed(api, backup_id)["verification"]
    for path in artifact.parent.iterdir():
        path.unlink()
    assert listed(api, backup_id)["verification"] == before
    artifact.parent.rmdir()
    assert listed(api, backup_id)["verification"] == before
