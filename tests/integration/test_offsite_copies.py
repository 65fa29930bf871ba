"""Backups copied to several destinations at once: BACKUP_DIR and an age-encrypted S3 bucket
(moto on loopback), each copy checked where it is stored, restored from the off-site copy
alone, deleted everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backups import backed_up
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import S3Server

BACKUP = "/api/system/backup"
DESTINATIONS = "/api/system/destinations"


@pytest.fixture
def offsite(api, s3_server: S3Server, bucket: str, identity) -> dict:
    body = {"name": "offsite", "type": "s3", "bucket": bucket, "prefix": "shop",
            "endpointUrl": s3_server.endpoint_url, "region": "us-east-1",
            "accessKeyId": S3Server.ACCESS_KEY_ID,
            "secretAccessKey": S3Server.SECRET_ACCESS_KEY, "forcePathStyle": True,
            "encryptTo": [str(identity.to_public())], "required": False}
    created = api.post(DESTINATIONS, json=body)
    assert created.status_code == 201, created.get_json()
    return created.get_json()


@pytest.fixture(autouse=True)
def drop_restored(pg_server):
    yield
    pg_server.drop_database("from_offsite")


def keys(s3_server: S3Server, bucket: str) -> list[str]:
    listing = s3_server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_one_backup_two_destinations_each_copy_checked(
        api, app, run_worker, offsite, s3_server, bucket):
    backup = backed_up(api, run_worker, destinations=["local", "offsite"])

    local, remote = backup["copies"]
    assert [local["destination"], remote["destination"]] == ["local", "offsite"]
    assert local["status"] == remote["status"] == "stored"
    assert (local["encrypted"], remote["encrypted"]) == (False, True)
    artifact = f"{backup['id']}.dump.zst"
    assert local["location"] == str(Path(app.config["BACKUP_DIR"]) / artifact)
    assert remote["location"] == f"s3://{bucket}/shop/{artifact}.age"
    manifest = f"shop/{backup['id']}.manifest.json"
    sidecar = f"shop/{backup['id']}.globals.json.zst.age"  # the saved roles and settings
    assert keys(s3_server, bucket) == ["shop/RESTORE", f"shop/{artifact}.age", sidecar,
                                       manifest]
    body = s3_server.client().get_object(Bucket=bucket, Key=f"shop/{artifact}.age")["Body"]
    assert body.read(21) == b"age-encryption.org/v1"  # the standard format, by its header
    assert remote["sha256"] != local["sha256"] == backup["sha256"]
    assert backup["verification"] == "valid"  # the automatic integrity check, local copy

    deleted = api.delete(f"{BACKUP}/{backup['id']}")
    assert deleted.status_code == 200
    assert keys(s3_server, bucket) == ["shop/RESTORE"]  # the recovery kit stays
    assert not (Path(app.config["BACKUP_DIR"]) / artifact).exists()


def test_a_backup_kept_only_off_site_is_verified_and_restored_from_there(
        api, app, run_worker, offsite, pagila, pg_server, s3_server, bucket):
    backup = backed_up(api, run_worker, destinations=["offsite"])
    assert [copy["destination"] for copy in backup["copies"]] == ["offsite"]
    assert list(Path(app.config["BACKUP_DIR"]).glob("backup-*")) == []

    verify = api.post(f"{BACKUP}/verify", json={"backupId": backup["id"], "level": "restore"})
    assert verify.status_code == 202
    run_worker()
    verified = api.get(f"{BACKUP}/{backup['id']}").get_json()
    assert verified["verification"] == "valid", verified["verificationResult"]
    checks = {c["name"] for c in verified["verificationResult"]["checks"]}
    assert {"decrypt", "content-sha256", "toc", "test-restore", "table public.rental"} <= checks

    started = api.post(f"{BACKUP}/restore", json={"backupId": backup["id"],
                                                   "targetDatabase": "from_offsite"})
    assert started.status_code == 202, started.get_json()
    run_worker()
    restore_id = started.get_json()["restoreId"]
    done = api.get(f"{BACKUP}/restore/{restore_id}").get_json()
    assert done["status"] == "completed", done["error"]
    restored = pg_server.url("from_offsite")
    assert schema_dump(restored) == schema_dump(pagila)
    assert table_fingerprints(restored) == table_fingerprints(pagila)


def test_an_optional_destination_that_fails_is_shown_not_stored(api, run_worker, s3_server,
                                                                bucket, identity):
    unreachable = {"name": "offsite", "type": "s3", "bucket": bucket,
                   "endpointUrl": "http://127.0.0.1:9", "forcePathStyle": True,
                   "accessKeyId": S3Server.ACCESS_KEY_ID,
                   "secretAccessKey": S3Server.SECRET_ACCESS_KEY, "required": False}
    assert api.post(DESTINATIONS, json=unreachable).status_code == 201
    backup = backed_up(api, run_worker, destinations=["local", "offsite"])
    local, remote = backup["copies"]
    assert local["status"] == "stored"
    assert remote["status"] == "retrying" and remote["size"] is None  # see test_copy_retry
    assert "127.0.0.1:9" in remote["error"]
    assert S3Server.SECRET_ACCESS_KEY not in str(backup)


def test_a_required_destination_that_fails_fails_the_backup(api, run_worker, bucket, app):
    unreachable = {"name": "offsite", "type": "s3", "bucket": bucket,
                   "endpointUrl": "http://127.0.0.1:9", "forcePathStyle": True}
    assert api.post(DESTINATIONS, json=unreachable).status_code == 201
    backup_id = api.post(BACKUP, json={"destinations": ["local", "offsite"]}).get_json()[
        "backupId"]
    run_worker()
    backup = api.get(f"{BACKUP}/{backup_id}").get_json()
    assert backup["status"] == "failed"
    assert "writing to offsite failed" in backup["error"]
    assert list(Path(app.config["BACKUP_DIR"]).glob("backup-*")) == []


def test_an_unknown_destination_is_refused_before_anything_is_recorded(api):
    refused = api.post(BACKUP, json={"destinations": ["nowhere"]})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "unknown_destination"
    assert api.get(BACKUP).get_json()["total"] == 0


def test_a_backup_failing_after_its_copies_were_written_leaves_none(
        api, app, run_worker, offsite, s3_server, bucket, monkeypatch):
    """The catalog refuses the completed row (say): every copy is deleted, the encrypted
    one under its own name (``.age``) too, so nothing is left that looks like a backup."""
    import jobs.backup

    real_mark = jobs.backup.mark

    def refuse_completion(row, status, **fields):
        if status == "completed":
            raise RuntimeError("database is locked")
        return real_mark(row, status, **fields)

    monkeypatch.setattr(jobs.backup, "mark", refuse_completion)
    backup_id = api.post(BACKUP, json={"destinations": ["local", "offsite"]}).get_json()[
        "backupId"]
    run_worker()
    backup = api.get(f"{BACKUP}/{backup_id}").get_json()
    assert backup["status"] == "failed" and "database is locked" in backup["error"]
    assert keys(s3_server, bucket) == []
    assert list(Path(app.config["BACKUP_DIR"]).iterdir()) == []


def test_a_destination_holding_backups_is_neither_moved_nor_deleted(
        api, run_worker, offsite, s3_server, bucket):
    """Copies are found by their destination's name and where it points: changing either,
    or deleting it, would leave backups that can no longer be restored."""
    backed_up(api, run_worker, destinations=["offsite"])
    where = f"{DESTINATIONS}/{offsite['id']}"
    body = {key: offsite[key] for key in ("name", "type", "bucket", "prefix", "endpointUrl",
                                          "region", "accessKeyId", "forcePathStyle",
                                          "encryptTo", "required")}
    for change in ({"prefix": "elsewhere"}, {"name": "renamed"}):
        moved = api.put(where, json={**body, **change})
        assert moved.status_code == 409, moved.get_json()
        assert moved.get_json()["error"]["code"] == "destination_in_use"
        assert "holds 1 backup copies" in moved.get_json()["error"]["message"]
    deleted = api.delete(where)
    assert deleted.status_code == 409 and "delete those backups first" in deleted.get_json()[
        "error"]["message"]
    kept = api.put(where, json={**body, "required": True})  # not where the copies are
    assert kept.status_code == 200 and kept.get_json()["secretAccessKey"] == "set"
    assert api.post(f"{DESTINATIONS}/{offsite['id']}/test").get_json()["ok"] is True
