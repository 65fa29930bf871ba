"""Destinations on schedules, each destination's own retention, and copies held by S3
Object Lock (moto on loopback): the clean-up trims copies, never a backup's last one, and
waits for a lock instead of failing on it."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import pytest

from services import retention
from services.extensions import db
from services.models import ActivityEvent, Backup, BackupCopy
from tests.support.backups import backed_up
from tools.localservices import S3Server

BACKUP = "/api/system/backup"
DESTINATIONS = "/api/system/destinations"
SCHEDULES = "/api/system/backup/schedule"
PREVIEW = "/api/system/backup/retention/preview"
DAILY = {"name": "nightly", "type": "full", "frequency": "daily", "time": "02:00",
         "retention": 30, "keepAtLeast": 1, "verify": "integrity"}


@pytest.fixture
def nas(api, tmp_path: Path) -> Path:
    """A second local destination, "nas", keeping its copies 90 days."""
    path = tmp_path / "nas"
    path.mkdir()
    created = api.post(DESTINATIONS, json={"name": "nas", "type": "local", "path": str(path),
                                           "retention": {"days": 90}})
    assert created.status_code == 201, created.get_json()
    return path


def age(app, backup_id: str, days: int) -> None:
    with app.app_context():
        db.session.get(Backup, backup_id).created_at -= timedelta(days=days)
        db.session.commit()


def test_a_schedule_sends_its_backups_where_it_says(api, app, run_worker, nas):
    unknown = api.post(SCHEDULES, json={**DAILY, "destinations": ["nowhere"]})
    assert unknown.status_code == 400
    assert unknown.get_json()["error"]["code"] == "unknown_destination"

    created = api.post(SCHEDULES, json={**DAILY, "destinations": ["nas"]}).get_json()
    assert created["destinations"] == ["nas"]
    run = api.post(f"{SCHEDULES}/{created['id']}/run").get_json()
    run_worker()
    backup = api.get(f"{BACKUP}/{run['backupId']}").get_json()
    assert [(c["destination"], c["status"]) for c in backup["copies"]] == [("nas", "stored")]
    assert (nas / f"{backup['id']}.dump.zst").is_file()

    nas_id = next(d["id"] for d in api.get(DESTINATIONS).get_json()["destinations"]
                  if d["name"] == "nas")
    refused = api.delete(f"{DESTINATIONS}/{nas_id}")
    assert refused.status_code == 409
    assert "schedule nightly" in refused.get_json()["error"]["message"]

    reset = api.put(f"{SCHEDULES}/{created['id']}", json={"destinations": None}).get_json()
    assert reset["destinations"] is None  # the configured default when it fires
    run = api.post(f"{SCHEDULES}/{created['id']}/run").get_json()
    run_worker()
    backup = api.get(f"{BACKUP}/{run['backupId']}").get_json()
    assert [c["destination"] for c in backup["copies"]] == ["local"]


def test_each_destination_keeps_its_copies_as_long_as_it_says(api, app, run_worker, nas):
    app.config["LOCAL_RETENTION_DAYS"] = 7  # a week on this machine, three months on the NAS
    old = backed_up(api, run_worker, destinations=["local", "nas"])["id"]
    new = backed_up(api, run_worker, destinations=["local", "nas"])["id"]
    only_local = backed_up(api, run_worker, destinations=["local"])["id"]
    for backup_id in (old, only_local):
        age(app, backup_id, 10)
    local = Path(app.config["BACKUP_DIR"])

    preview = api.get(PREVIEW).get_json()
    trims = {(c["backupId"], c["destination"]): c for c in preview["copies"]}
    assert trims[(old, "local")]["delete"] is True
    assert trims[(old, "local")]["reason"] == "expired: 10 days old, retention 7 days at local"
    assert trims[(only_local, "local")]["delete"] is False
    assert "last stored copy" in trims[(only_local, "local")]["reason"]
    assert trims[(old, "nas")]["delete"] is False
    assert preview["deleteCount"] == 0  # manual backups: the backups themselves stay

    with app.app_context():
        retention.apply()
    assert not (local / f"{old}.dump.zst").exists() and not (local / f"{old}.manifest.json"
                                                              ).exists()
    assert (nas / f"{old}.dump.zst").is_file() and (local / f"{only_local}.dump.zst").is_file()
    assert (local / f"{new}.dump.zst").is_file()
    kept = api.get(f"{BACKUP}/{old}").get_json()
    assert [c["destination"] for c in kept["copies"]] == ["nas"]

    verified = api.post(f"{BACKUP}/verify", json={"backupId": old, "level": "integrity"})
    assert verified.status_code == 202
    run_worker()
    assert api.get(f"{BACKUP}/{old}").get_json()["verification"] == "valid"  # from the NAS
    with app.app_context():
        [event] = db.session.query(ActivityEvent).filter_by(action="copy.delete").all()
        assert (event.target, event.outcome, event.actor) == (f"{old}@local", "ok", "retention")


@pytest.fixture
def locked_offsite(api, s3_server: S3Server) -> str:
    """An S3 destination whose bucket has Object Lock, locking every copy for a day."""
    bucket = f"locked-{secrets.token_hex(8)}"
    s3_server.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    body = {"name": "vault", "type": "s3", "bucket": bucket, "prefix": "shop",
            "endpointUrl": s3_server.endpoint_url, "region": "us-east-1",
            "accessKeyId": S3Server.ACCESS_KEY_ID, "forcePathStyle": True,
            "secretAccessKey": S3Server.SECRET_ACCESS_KEY, "required": False,
            "objectLock": {"mode": "GOVERNANCE", "days": 1}}
    created = api.post(DESTINATIONS, json=body)
    assert created.status_code == 201, created.get_json()
    return bucket


def test_a_locked_copy_holds_an_expired_backup_without_a_failure(
        api, app, run_worker, locked_offsite, s3_server):
    app.config["MANUAL_RETENTION_DAYS"] = 7
    old = backed_up(api, run_worker, destinations=["local", "vault"])["id"]
    backed_up(api, run_worker, destinations=["local"])  # the newest good one: kept whatever its age
    age(app, old, 10)
    copies = {c["destination"]: c for c in api.get(f"{BACKUP}/{old}").get_json()["copies"]}
    assert copies["vault"]["lockedUntil"] is not None
    refused = api.delete(f"{BACKUP}/{old}")  # by hand neither: the copy would stay behind
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "backup_locked"
    assert "locked until" in refused.get_json()["error"]["message"]

    decision = next(d for d in api.get(PREVIEW).get_json()["decisions"]
                    if d["backupId"] == old)
    assert decision["delete"] is False
    assert decision["reason"].startswith("held: expired: 10 days old, retention 7 days, but "
                                         "a copy is locked until ")

    with app.app_context():
        retention.apply()
        retention.apply()  # a second clean-up changes nothing and reports nothing failed
        assert db.session.get(Backup, old) is not None
        left = db.session.query(BackupCopy).filter_by(backup_id=old).all()
        assert [copy.destination for copy in left] == ["vault"]
        events = db.session.query(ActivityEvent).filter(
            ActivityEvent.action.in_(("copy.delete", "backup.delete"))).order_by(
            ActivityEvent.id).all()
        # The refused delete by hand (409), then retention's one removal of the local copy.
        assert [(e.target, e.outcome) for e in events] == [
            (f"/api/system/backup/{old}", "conflict"), (f"{old}@local", "ok")]
    assert not (Path(app.config["BACKUP_DIR"]) / f"{old}.dump.zst").exists()
    listing = s3_server.client().list_objects_v2(Bucket=locked_offsite)["Contents"]
    assert {f"shop/{old}.dump.zst", f"shop/{old}.manifest.json"} <= {
        item["Key"] for item in listing}


def test_a_write_only_destination_leaves_deletion_to_the_bucket(
        api, app, run_worker, s3_server, bucket):
    body = {"name": "drop-box", "type": "s3", "bucket": bucket, "prefix": "shop",
            "endpointUrl": s3_server.endpoint_url, "region": "us-east-1",
            "accessKeyId": S3Server.ACCESS_KEY_ID, "forcePathStyle": True,
            "secretAccessKey": S3Server.SECRET_ACCESS_KEY, "deleteObjects": False}
    created = api.post(DESTINATIONS, json=body).get_json()
    assert created["deleteObjects"] is False
    backup_id = backed_up(api, run_worker, destinations=["local", "drop-box"])["id"]

    deleted = api.delete(f"{BACKUP}/{backup_id}")
    assert deleted.status_code == 200
    listing = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert {f"shop/{backup_id}.dump.zst", f"shop/{backup_id}.manifest.json"} <= {
        item["Key"] for item in listing}  # not even tried: the key may not delete
    assert not (Path(app.config["BACKUP_DIR"]) / f"{backup_id}.dump.zst").exists()
    with app.app_context():
        [event] = db.session.query(ActivityEvent).filter_by(action="backup.delete").all()
        assert event.outcome == "ok"
        assert "drop-box: left to the bucket's lifecycle rules" in event.detail


def test_deleting_a_backup_with_a_copy_on_an_unmounted_disk_deletes_the_rest(
        api, app, run_worker, nas):
    backup_id = backed_up(api, run_worker, destinations=["local", "nas"])["id"]
    for path in nas.iterdir():
        path.unlink()
    nas.rmdir()  # the NAS is not mounted: its directory is not there (and is not made)

    deleted = api.delete(f"{BACKUP}/{backup_id}")
    assert deleted.status_code == 200, deleted.get_json()
    assert not (Path(app.config["BACKUP_DIR"]) / f"{backup_id}.dump.zst").exists()
    assert not nas.exists()
    with app.app_context():
        [event] = db.session.query(ActivityEvent).filter_by(action="backup.delete").all()
        assert event.outcome == "failed" and "nas: " in event.detail  # named, not a 500
