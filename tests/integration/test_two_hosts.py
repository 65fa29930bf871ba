"""Workers on two hosts: a shared Redis, a PostgreSQL catalog and an S3 bucket, each
worker with its own BACKUP_DIR. One host backs up; the other verifies and restores, from
the bucket, the backups whose local copy lives on the first host's disk."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dbcompare import schema_dump, table_fingerprints
from tests.support.workers import kill_tree, start_worker, wait_for, worker_env
from tools.localservices import S3Server

BACKUP = "/api/system/backup"


@pytest.fixture
def app(pagila, redis_server, pg_server, tmp_path: Path):
    """The web host: its catalog in PostgreSQL; DEFAULT_DESTINATIONS sends each backup to
    the bucket and to the BACKUP_DIR of whichever host runs the backup."""
    import redis as redis_lib

    from app import create_app
    from services.extensions import db

    redis_lib.Redis.from_url(redis_server.url).flushdb()
    pg_server.drop_database("two_hosts_catalog")
    app = create_app({
        "DATABASE_URL": pagila, "REDIS_URL": redis_server.url,
        "METADATA_DATABASE_URL": pg_server.create_database("two_hosts_catalog"),
        "BACKUP_DIR": str(tmp_path / "web"), "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "TESTING": True,
    })
    app.config["DEFAULT_DESTINATIONS"] = ["local", "offsite"]
    yield app
    with app.app_context():
        db.engine.dispose()
    pg_server.drop_database("two_hosts_catalog")
    pg_server.drop_database("on_host_b")


def host(app, tmp_path: Path, name: str, queues: tuple[str, ...]) -> Iterator[Path]:
    """A worker process with its own BACKUP_DIR (the one thing hosts do not share)."""
    backup_dir = tmp_path / name
    backup_dir.mkdir()
    bindir = tmp_path / f"{name}-bin"
    bindir.mkdir()
    env = {**worker_env(app, bindir), "BACKUP_DIR": str(backup_dir)}
    process: subprocess.Popen = start_worker(env, queues=queues)
    try:
        yield backup_dir
    finally:
        kill_tree(process.pid)
        process.wait()


@pytest.fixture
def host_a(app, tmp_path: Path) -> Iterator[Path]:
    yield from host(app, tmp_path, "host-a", ("backups",))


@pytest.fixture
def host_b(app, tmp_path: Path) -> Iterator[Path]:
    yield from host(app, tmp_path, "host-b", ("verifications", "restores"))


@pytest.fixture
def offsite(api, s3_server: S3Server, bucket: str) -> None:
    created = api.post("/api/system/destinations", json={
        "name": "offsite", "type": "s3", "bucket": bucket, "prefix": "shop",
        "endpointUrl": s3_server.endpoint_url, "region": "us-east-1", "forcePathStyle": True,
        "accessKeyId": S3Server.ACCESS_KEY_ID, "secretAccessKey": S3Server.SECRET_ACCESS_KEY})
    assert created.status_code == 201, created.get_json()


def test_any_host_verifies_and_restores_what_another_backed_up(
        app, api, offsite, host_a: Path, host_b: Path, pagila, pg_server):
    created = api.post(BACKUP, json={"type": "full"})
    assert created.status_code == 202, created.get_json()
    backup_id = created.get_json()["backupId"]

    def verified() -> bool:
        backup = api.get(f"{BACKUP}/{backup_id}").get_json()
        assert backup["status"] != "failed", backup["error"]
        return backup["verification"] != "unverified"

    wait_for(verified)  # host A backs up; its automatic verification runs on host B
    backup = api.get(f"{BACKUP}/{backup_id}").get_json()
    assert backup["verification"] == "valid", backup["verificationResult"]
    [note] = backup["verificationResult"]["warnings"]
    assert note.startswith("read the copy at offsite: skipped local (")
    assert [(c["destination"], c["status"]) for c in backup["copies"]] == [
        ("local", "stored"), ("offsite", "stored")]
    assert backup["copies"][0]["location"].startswith(str(host_a))
    assert list(host_b.iterdir()) == []  # host B read the bucket, not a disk it lacks

    started = api.post(f"{BACKUP}/restore", json={"backupId": backup_id,
                                                   "targetDatabase": "on_host_b"})
    assert started.status_code == 202, started.get_json()
    restore = f"{BACKUP}/restore/{started.get_json()['restoreId']}"
    wait_for(lambda: api.get(restore).get_json()["status"] in ("completed", "failed"))
    done = api.get(restore).get_json()
    assert done["status"] == "completed", done["error"]
    assert done["result"]["readFrom"] == "offsite"
    restored = pg_server.url("on_host_b")
    assert schema_dump(restored) == schema_dump(pagila)
    assert table_fingerprints(restored) == table_fingerprints(pagila)
