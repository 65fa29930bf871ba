"""A backup larger than one S3 part, through the app: copied to BACKUP_DIR and a bucket
(moto on loopback) as a multipart upload, verified and restored from the bucket alone,
deleted everywhere; and the bucket's server stopped between two parts of the upload,
which fails that copy alone, honestly, until a retry stores it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.backups import backed_up, restore
from tests.support.dbcompare import schema_dump, table_fingerprints
from tests.support.workers import install_gated_pg_dump, wait_for
from tools.localservices import S3Server

BACKUP = "/api/system/backup"
DESTINATIONS = "/api/system/destinations"
MiB = 2**20


@pytest.fixture
def big(pagila: str) -> str:
    """The protected database with 12 MiB of incompressible bytes: its compressed dump is
    larger than one 8 MiB part."""
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("CREATE TABLE scans (id int PRIMARY KEY, image bytea)")
        for n in range(3):
            conn.execute("INSERT INTO scans VALUES (%s, %s)", [n, os.urandom(4 * MiB)])
    return pagila


@pytest.fixture(autouse=True)
def drop_restored(pg_server):
    yield
    pg_server.drop_database("from_parts")


def add_offsite(api, server: S3Server, bucket: str, required: bool) -> None:
    created = api.post(DESTINATIONS, json={
        "name": "offsite", "type": "s3", "bucket": bucket, "prefix": "shop",
        "endpointUrl": server.endpoint_url, "region": "us-east-1", "forcePathStyle": True,
        "accessKeyId": S3Server.ACCESS_KEY_ID, "secretAccessKey": S3Server.SECRET_ACCESS_KEY,
        "required": required})
    assert created.status_code == 201, created.get_json()


def test_a_backup_of_several_parts_is_verified_restored_and_deleted_from_the_bucket(
        api, app, run_worker, big, pg_server, s3_server, bucket):
    add_offsite(api, s3_server, bucket, required=True)
    backup = backed_up(api, run_worker, destinations=["local", "offsite"])
    remote = backup["copies"][1]
    assert remote["status"] == "stored" and remote["size"] > 8 * MiB
    client = s3_server.client()
    key = f"shop/{backup['id']}.dump.zst"
    assert client.head_object(Bucket=bucket, Key=key)["ETag"].endswith('-2"')  # two parts

    (Path(app.config["BACKUP_DIR"]) / f"{backup['id']}.dump.zst").unlink()  # this disk died
    verify = api.post(f"{BACKUP}/verify", json={"backupId": backup["id"], "level": "integrity"})
    assert verify.status_code == 202
    run_worker()
    verified = api.get(f"{BACKUP}/{backup['id']}").get_json()
    assert verified["verification"] == "valid", verified["verificationResult"]
    assert verified["verificationResult"]["warnings"][0].startswith(
        "read the copy at offsite: skipped local")

    started = restore(api, backupId=backup["id"], targetDatabase="from_parts")
    assert started.status_code == 202, started.get_json()
    run_worker()
    done = api.get(f"{BACKUP}/restore/{started.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    restored = pg_server.url("from_parts")
    assert schema_dump(restored) == schema_dump(big)
    assert table_fingerprints(restored) == table_fingerprints(big)

    assert api.delete(f"{BACKUP}/{backup['id']}").status_code == 200
    left = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [item["Key"] for item in left] == ["shop/RESTORE"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.fixture
def spare() -> Iterator[S3Server]:
    """An S3 server of this test's own, to stop in the middle of an upload."""
    server = S3Server().start()
    yield server
    server.stop()


def test_a_bucket_that_stops_between_two_parts_fails_its_copy_alone_until_retried(
        api, app, env, big, spare, tmp_path, request):
    gate = tmp_path / "go-on"
    install_gated_pg_dump(Path(env["PATH"].split(os.pathsep)[0]), 20, gate)
    env["COPY_RETRY_INTERVALS"] = "none"  # retried by hand below
    # compressed as it comes: a threaded compressor holds back a job's worth (several MB)
    # of what pg_dump wrote before the pause, and part 1 might never fill
    env["ZSTD_THREADS"] = "0"
    spare.client().create_bucket(Bucket="parts")
    add_offsite(api, spare, "parts", required=False)
    request.getfixturevalue("worker")  # a real worker process with that pg_dump
    backup_id = api.post(BACKUP, json={"type": "full", "destinations": ["local", "offsite"]}
                         ).get_json()["backupId"]

    def one_part_uploaded() -> bool:
        uploads = spare.client().list_multipart_uploads(Bucket="parts").get("Uploads", [])
        return bool(uploads) and bool(spare.client().list_parts(
            Bucket="parts", Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
        ).get("Parts"))

    wait_for(one_part_uploaded)
    spare.stop()  # the bucket's server goes away between part 1 and part 2
    gate.touch()
    wait_for(lambda: api.get(f"{BACKUP}/{backup_id}").get_json()["status"] != "running",
             timeout=120)
    backup = api.get(f"{BACKUP}/{backup_id}").get_json()
    assert backup["status"] == "completed", backup["error"]  # the required local copy
    local, remote = backup["copies"]
    assert local["status"] == "stored"
    assert remote["status"] == "failed" and remote["sha256"] is None
    assert f"127.0.0.1:{spare.port}" in remote["error"], remote["error"]
    assert "\n" not in remote["error"] and S3Server.SECRET_ACCESS_KEY not in remote["error"]

    again = S3Server(port=spare.port).start()  # back (moto forgets everything on a restart)
    request.addfinalizer(again.stop)
    again.client().create_bucket(Bucket="parts")
    retried = api.post(f"{BACKUP}/{backup_id}/copies/offsite/retry")
    assert retried.status_code == 202, retried.get_json()
    wait_for(lambda: api.get(f"{BACKUP}/{backup_id}").get_json()["copies"][1]["status"]
             in ("stored", "failed"), timeout=120)
    remote = api.get(f"{BACKUP}/{backup_id}").get_json()["copies"][1]
    assert remote["status"] == "stored", remote["error"]
    head = again.client().head_object(Bucket="parts", Key=f"shop/{backup_id}.dump.zst")
    assert head["ContentLength"] == remote["size"] and head["ETag"].endswith('-2"')
    assert again.client().list_multipart_uploads(Bucket="parts").get("Uploads", []) == []
