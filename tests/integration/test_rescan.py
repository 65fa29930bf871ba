"""The recovery kit: catalog and Redis lost, a fresh install (same SECRET_KEY) pointed at
the destinations gets every backup back with its copies, and restores one from the bucket;
tampered, forged and foreign manifests are reported, not imported."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import redis as redis_lib
from flask import Flask

from pgbackup import LocalStorage, read_manifest, write_manifest
from pgbackup.recoverykit import RESTORE_NAME
from tests.conftest import ADMIN_PASSWORD
from tests.support.backups import backed_up
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import S3Server

BACKUP = "/api/system/backup"
DESTINATIONS = "/api/system/destinations"
RESCAN = f"{DESTINATIONS}/rescan"
COPY_FIELDS = ("destination", "status", "size", "sha256", "location", "encrypted")


@pytest.fixture
def offsite_body(s3_server: S3Server, bucket: str, identity) -> dict:
    return {"name": "offsite", "type": "s3", "bucket": bucket, "prefix": "shop",
            "endpointUrl": s3_server.endpoint_url, "region": "us-east-1",
            "accessKeyId": S3Server.ACCESS_KEY_ID,
            "secretAccessKey": S3Server.SECRET_ACCESS_KEY, "forcePathStyle": True,
            "encryptTo": [str(identity.to_public())], "required": False}


@pytest.fixture(autouse=True)
def drop_restored(pg_server):
    yield
    pg_server.drop_database("from_rescan")


class Install:
    """A fresh install on the same servers, BACKUP_DIR and SECRET_KEY as ``app``, with an
    empty catalog of its own and a flushed Redis: what is left after losing both."""

    def __init__(self, app: Flask, catalog: Path, **overrides: str) -> None:
        from app import create_app
        from services.extensions import db
        from services.models import ApiToken, User

        redis_lib.Redis.from_url(app.config["REDIS_URL"]).flushdb()
        keep = ("DATABASE_URL", "REDIS_URL", "BACKUP_DIR", "SECRET_KEY",
                "BACKUP_AGE_IDENTITIES", "PASSWORD_HASH_METHOD")
        self.app = create_app({**{key: app.config[key] for key in keep}, "TESTING": True,
                               "METADATA_DATABASE_URL": f"sqlite:///{catalog}", **overrides})
        with self.app.app_context():
            admin = User(username="admin", role="admin")
            admin.set_password(ADMIN_PASSWORD)
            row, self.token = ApiToken.mint("rescue", "admin")
            db.session.add_all([admin, row])
            db.session.commit()
        self.client = self.app.test_client()

    def call(self, method: str, path: str, **kwargs):
        headers = {"Authorization": f"Bearer {self.token}"}
        return getattr(self.client, method)(path, headers=headers, **kwargs)

    def run_worker(self) -> None:
        from jobs.queues import QUEUES, redis_connection
        from jobs.worker import BackupSimpleWorker

        with self.app.app_context():
            BackupSimpleWorker(list(QUEUES), connection=redis_connection()).work(burst=True)

    def rescan(self, **body) -> dict:
        started = self.call("post", RESCAN, json={"destination": None, **body})
        assert started.status_code == 202, started.get_json()
        self.run_worker()
        job = self.call("get", f"/api/system/jobs/{started.get_json()['jobId']}").get_json()
        assert job["status"] == "completed", job
        return job["progress"]["report"]

    def cli(self, *args: str):
        return self.app.test_cli_runner().invoke(args=["backup", "rescan", *args])

    def close(self) -> None:
        from services.extensions import db

        with self.app.app_context():
            db.engine.dispose()


@pytest.fixture
def fresh_install(app, tmp_path: Path):
    installs: list[Install] = []

    def make(**overrides: str) -> Install:
        catalog = tmp_path / f"fresh-{len(installs)}.sqlite3"
        installs.append(Install(app, catalog, **overrides))
        return installs[-1]

    yield make
    for install in installs:
        install.close()


def copies_of(backup: dict) -> list[dict]:
    return [{key: copy[key] for key in COPY_FIELDS} for copy in backup["copies"]]


def test_a_fresh_install_gets_every_backup_back_and_restores_from_the_bucket(
        api, app, run_worker, offsite_body, s3_server, bucket, pagila, pg_server,
        fresh_install):
    assert api.post(DESTINATIONS, json=offsite_body).status_code == 201
    both = backed_up(api, run_worker, destinations=["local", "offsite"])
    remote_only = backed_up(api, run_worker, destinations=["offsite"])
    objects = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert "shop/RESTORE" in {item["Key"] for item in objects}
    assert (Path(app.config["BACKUP_DIR"]) / RESTORE_NAME).is_file()

    rescue = fresh_install()
    assert rescue.call("get", BACKUP).get_json()["total"] == 0
    assert rescue.call("post", DESTINATIONS, json=offsite_body).status_code == 201
    report = rescue.rescan()

    assert report["destinations"] == ["local", "offsite"]
    assert report["imported"] == [both["id"], remote_only["id"]]
    assert report["copiesAdded"] == [f"{both['id']}@offsite"]
    assert (report["found"], report["alreadyKnown"], report["skipped"]) == (3, 0, [])
    listed = rescue.call("get", BACKUP).get_json()["backups"]
    assert sorted(backup["id"] for backup in listed) == sorted([both["id"],
                                                                remote_only["id"]])
    for original in (both, remote_only):
        found = rescue.call("get", f"{BACKUP}/{original['id']}").get_json()
        assert (found["status"], found["verification"]) == ("completed", "unverified")
        for key in ("type", "size", "sha256", "filename"):
            assert found[key] == original[key], key
        assert copies_of(found) == copies_of(original)

    started = rescue.call("post", f"{BACKUP}/restore", json={
        "backupId": remote_only["id"], "targetDatabase": "from_rescan"})
    assert started.status_code == 202, started.get_json()
    rescue.run_worker()
    done = rescue.call("get", f"{BACKUP}/restore/{started.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    restored = pg_server.url("from_rescan")
    assert schema_dump(restored) == schema_dump(pagila)
    assert table_fingerprints(restored) == table_fingerprints(pagila)

    again = rescue.rescan()
    assert (again["imported"], again["copiesAdded"], again["alreadyKnown"]) == ([], [], 3)


def resealed(path: Path, **changes: object) -> None:
    """Change a manifest's fields and recompute its self-checksum: only its signature
    can tell."""
    data = json.loads(path.read_text())
    del data["manifest_sha256"]
    data.update(changes)
    canonical = json.dumps(data, sort_keys=True, indent=2) + "\n"
    data["manifest_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")


@pytest.mark.empty_target
def test_tampered_forged_and_foreign_manifests_are_reported_not_imported(
        api, app, run_worker, fresh_install):
    good, forged, tampered, foreign = (backed_up(api, run_worker)["id"] for _ in range(4))
    storage = LocalStorage(app.config["BACKUP_DIR"])
    resealed(storage.path(f"{forged}.manifest.json"), database="elsewhere")
    path = storage.path(f"{tampered}.manifest.json")
    path.write_text(path.read_text().replace('"duration_ms": ', '"duration_ms": 1'))
    write_manifest(storage, read_manifest(storage, foreign), b"another install's key")

    rescue = fresh_install()
    first = rescue.cli()
    assert first.exit_code == 1, first.output
    assert f"imported {good}" in first.output
    assert f"skipped local/{forged}.manifest.json (forged)" in first.output
    assert f"skipped local/{tampered}.manifest.json (tampered)" in first.output
    assert "was modified" in first.output
    assert f"skipped local/{foreign}.manifest.json (foreign)" in first.output
    assert "2 manifests were tampered with or forged" in first.output
    listed = [b["id"] for b in rescue.call("get", BACKUP).get_json()["backups"]]
    assert listed == [good]

    accepting = rescue.cli("--accept-foreign", "--quick")
    assert accepting.exit_code == 1, accepting.output  # the forged one is still there
    assert f"imported {foreign}" in accepting.output
    assert f"accepted without this install's signature: {foreign}@local" in accepting.output
    assert f"imported {forged}" not in accepting.output
    assert sorted(b["id"] for b in rescue.call("get", BACKUP).get_json()["backups"]) == [
        good, foreign]

    activity = rescue.call("get", "/api/system/activity").get_json()
    imports = [e["target"] for e in activity["events"] if e["action"] == "backup.import"]
    assert sorted(imports) == [good, foreign]

    repeat = rescue.cli("--destination", "local", "--accept-foreign")
    assert "0 backups imported, 0 copies added, 2 already known, 2 skipped" in repeat.output


@pytest.mark.empty_target
def test_a_key_set_on_the_new_install_decides_which_manifests_are_trusted(
        api, app, run_worker, fresh_install):
    """A fresh install without the old SECRET_KEY finds the manifests signed with another
    key; given the old key as MANIFEST_KEY, it trusts them."""
    backup_id = backed_up(api, run_worker)["id"]
    old_secret = app.config["SECRET_KEY"]
    rescue = fresh_install(SECRET_KEY="another-secret-key-" + "y" * 32)
    refused = rescue.cli()
    assert refused.exit_code == 0, refused.output
    assert f"skipped local/{backup_id}.manifest.json (foreign)" in refused.output
    assert rescue.call("get", BACKUP).get_json()["total"] == 0

    trusting = fresh_install(SECRET_KEY="another-secret-key-" + "y" * 32,
                             MANIFEST_KEY=old_secret)
    assert f"imported {backup_id}" in trusting.cli().output


@pytest.mark.empty_target
def test_rescan_requests_are_checked_and_jobs_carry_no_secret(api, app):
    from jobs.queues import BACKUP_QUEUE, queue

    unknown = api.post(RESCAN, json={"destination": "nowhere"})
    assert unknown.status_code == 400
    assert unknown.get_json()["error"]["code"] == "unknown_destination"
    for body in ({"destination": 3}, {"acceptForeign": "yes"}, {"extra": 1}):
        assert api.post(RESCAN, json=body).status_code == 400, body
    started = api.post(RESCAN, json={"destination": "local", "acceptForeign": True})
    assert started.status_code == 202
    with app.app_context():
        job = queue(BACKUP_QUEUE).fetch_job(started.get_json()["jobId"])
        assert job.args == ("local", True)
        assert job.func_name == "jobs.rescan.run_rescan"


@pytest.mark.empty_target
def test_verification_fails_a_forged_manifest_and_notes_a_foreign_one(api, app, run_worker):
    forged, foreign = (backed_up(api, run_worker)["id"] for _ in range(2))
    storage = LocalStorage(app.config["BACKUP_DIR"])
    resealed(storage.path(f"{forged}.manifest.json"), snapshot="00000003-00000001-1")
    write_manifest(storage, read_manifest(storage, foreign), b"another install's key")
    for backup_id in (forged, foreign):
        assert api.post(f"{BACKUP}/verify", json={"backupId": backup_id}).status_code == 202
    run_worker()

    def signature_check(backup_id: str) -> tuple[str, dict]:
        backup = api.get(f"{BACKUP}/{backup_id}").get_json()
        checks = {c["name"]: c for c in backup["verificationResult"]["checks"]}
        return backup["verification"], checks["manifest-signature"]

    verdict, check = signature_check(forged)
    assert (verdict, check["ok"]) == ("corrupted", False)
    assert "forged or changed after it was written" in check["detail"]
    verdict, check = signature_check(foreign)
    assert (verdict, check["ok"]) == ("valid", True)
    assert "signed with another key" in check["detail"]
