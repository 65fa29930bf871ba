"""A failed copy is retried (automatically, or on request) from a stored copy and shown
until then, never as stored; verification and restore read the next copy when the first
cannot be read; each destination's health, metrics and alert follow its copies. S3 is
moto on loopback: a server of the test's own, stopped to make its destination unreachable."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq.job import Job

from jobs.queues import BACKUP_QUEUE, QUEUES, queue, redis_connection
from jobs.reconcile import reconcile_backups
from jobs.worker import BackupSimpleWorker
from services import alerts
from tests.support.dbcompare import schema_dump, table_fingerprints
from tests.support.metrics import scrape, value
from tools.localservices import S3Server

BACKUP = "/api/system/backup"
DESTINATIONS = "/api/system/destinations"


@pytest.fixture
def spare() -> Iterator[S3Server]:
    """An S3 server of this test's own, not started yet: its endpoint refuses connections."""
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def drop_restored(pg_server):
    yield
    pg_server.drop_database("from_fallback")


def add_s3(api, name: str, endpoint: str, bucket: str, **fields) -> dict:
    body = {"name": name, "type": "s3", "bucket": bucket, "endpointUrl": endpoint,
            "region": "us-east-1", "accessKeyId": S3Server.ACCESS_KEY_ID,
            "secretAccessKey": S3Server.SECRET_ACCESS_KEY, "forcePathStyle": True,
            "required": False, **fields}
    created = api.post(DESTINATIONS, json=body)
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def move(api, destination: dict, endpoint: str) -> None:
    """Point a destination at another endpoint (allowed: not where its copies are found)."""
    body = {key: destination[key] for key in ("name", "type", "bucket", "prefix", "region",
                                              "accessKeyId", "forcePathStyle", "encryptTo",
                                              "required")}
    moved = api.put(f"{DESTINATIONS}/{destination['id']}", json={**body, "endpointUrl": endpoint})
    assert moved.status_code == 200, moved.get_json()


def back_up(api, run_worker, kind: str = "full", **body) -> dict:
    backup_id = api.post(BACKUP, json={"type": kind, **body}).get_json()["backupId"]
    run_worker()
    return api.get(f"{BACKUP}/{backup_id}").get_json()


def copy_at(backup: dict, destination: str) -> dict:
    return next(copy for copy in backup["copies"] if copy["destination"] == destination)


def retry(api, backup_id: str, destination: str):
    return api.post(f"{BACKUP}/{backup_id}/copies/{destination}/retry")


def test_a_failed_copy_is_retried_when_due_and_stored_once_checked(
        api, app, run_worker, spare, identity):
    app.config["COPY_RETRY_INTERVALS"] = (3600,)  # an hour after the backup
    add_s3(api, "offsite", spare.endpoint_url, "retried", prefix="shop",
           encryptTo=[str(identity.to_public())])

    backup = back_up(api, run_worker, destinations=["local", "offsite"])

    assert backup["status"] == "completed"
    remote = copy_at(backup, "offsite")
    assert remote["status"] == "retrying" and remote["sha256"] is None
    assert f"127.0.0.1:{spare.port}" in remote["error"]
    assert remote["attempts"] == 1 and remote["attemptedAt"]
    assert S3Server.SECRET_ACCESS_KEY not in str(backup)
    with app.app_context():
        scheduled = queue(BACKUP_QUEUE).scheduled_job_registry
        [job_id] = scheduled.get_job_ids()
        job = Job.fetch(job_id, connection=redis_connection())
        assert list(job.args) == [backup["id"], "offsite"]  # ids only, never a secret
        due = scheduled.get_scheduled_time(job)
        assert due > datetime.now(UTC) + timedelta(minutes=59)

    spare.start()
    spare.client().create_bucket(Bucket="retried")
    with app.app_context():
        scheduled.schedule(job, datetime.now(UTC))  # the hour has passed
        BackupSimpleWorker(list(QUEUES), connection=redis_connection()).work(
            burst=True, with_scheduler=True)

    stored = copy_at(api.get(f"{BACKUP}/{backup['id']}").get_json(), "offsite")
    assert stored["status"] == "stored" and stored["error"] is None
    assert stored["attempts"] == 2 and stored["encrypted"] is True
    key = f"shop/{backup['id']}.dump.zst.age"
    assert stored["location"] == f"s3://retried/{key}"
    body = spare.client().get_object(Bucket="retried", Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == stored["sha256"] and len(body) == stored["size"]
    assert spare.client().list_multipart_uploads(Bucket="retried").get("Uploads", []) == []
    names = {item["Key"] for item in spare.client().list_objects_v2(
        Bucket="retried")["Contents"]}
    assert {key, f"shop/{backup['id']}.manifest.json",
            f"shop/{backup['id']}.globals.json.zst.age"} <= names  # the saved roles too


def test_a_copy_that_keeps_failing_ends_failed_and_is_retried_on_request(
        api, app, run_worker, s3_server, bucket):
    app.config["COPY_RETRY_INTERVALS"] = (0, 0)  # at once, then once more
    offsite = add_s3(api, "offsite", "http://127.0.0.1:9", bucket)

    backup = back_up(api, run_worker, kind="schema-only", destinations=["local", "offsite"])
    remote = copy_at(backup, "offsite")
    assert remote["status"] == "failed", remote  # not stuck retrying
    assert remote["attempts"] == 3 and "127.0.0.1:9" in remote["error"]

    assert retry(api, backup["id"], "nowhere").status_code == 404
    assert retry(api, "backup-2001-01-01T00-00-00-000Z", "offsite").status_code == 404
    stored = retry(api, backup["id"], "local")
    assert stored.status_code == 409 and stored.get_json()["error"]["code"] == "copy_stored"

    move(api, offsite, s3_server.endpoint_url)
    queued = retry(api, backup["id"], "offsite")
    assert queued.status_code == 202, queued.get_json()
    assert queued.get_json()["status"] == "retrying" and queued.get_json()["jobId"]
    again = retry(api, backup["id"], "offsite")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "copy_retrying"
    run_worker()
    remote = copy_at(api.get(f"{BACKUP}/{backup['id']}").get_json(), "offsite")
    assert remote["status"] == "stored" and remote["attempts"] == 4
    assert retry(api, backup["id"], "offsite").status_code == 409


def test_a_retry_on_request_replaces_one_waiting_for_its_interval(
        api, app, run_worker, s3_server, bucket):
    app.config["COPY_RETRY_INTERVALS"] = (3600, 3600)
    offsite = add_s3(api, "offsite", "http://127.0.0.1:9", bucket)
    backup = back_up(api, run_worker, kind="schema-only", destinations=["local", "offsite"])
    assert copy_at(backup, "offsite")["status"] == "retrying"
    with app.app_context():
        scheduled = queue(BACKUP_QUEUE).scheduled_job_registry
        assert len(scheduled.get_job_ids()) == 1

    move(api, offsite, s3_server.endpoint_url)
    assert retry(api, backup["id"], "offsite").status_code == 202
    with app.app_context():
        assert scheduled.get_job_ids() == []
    run_worker()
    assert copy_at(api.get(f"{BACKUP}/{backup['id']}").get_json(), "offsite")[
        "status"] == "stored"


def test_deleting_a_backup_cancels_its_waiting_copy_job(api, app, run_worker, bucket):
    app.config["COPY_RETRY_INTERVALS"] = (3600,)
    add_s3(api, "offsite", "http://127.0.0.1:9", bucket)
    backup = back_up(api, run_worker, kind="schema-only", destinations=["local", "offsite"])
    assert copy_at(backup, "offsite")["status"] == "retrying"
    assert api.delete(f"{BACKUP}/{backup['id']}").status_code == 200
    with app.app_context():  # no job is left to write a copy of a deleted backup
        assert queue(BACKUP_QUEUE).scheduled_job_registry.get_job_ids() == []


def test_a_copy_whose_job_was_lost_is_failed_by_the_reconciler(api, app, run_worker, bucket):
    app.config["COPY_RETRY_INTERVALS"] = (3600,)
    add_s3(api, "offsite", "http://127.0.0.1:9", bucket)
    backup = back_up(api, run_worker, kind="schema-only", destinations=["local", "offsite"])
    with app.app_context():
        connection = redis_connection()
        connection.flushdb()  # Redis lost its data: nothing will make the copy
        reconcile_backups(connection)
    remote = copy_at(api.get(f"{BACKUP}/{backup['id']}").get_json(), "offsite")
    assert remote["status"] == "failed"
    assert remote["error"] == "its copy job was lost (was Redis flushed?): retry it"


def test_a_copy_with_nothing_to_copy_from_is_refused(api, app, run_worker, bucket):
    app.config["COPY_RETRY_INTERVALS"] = ()
    add_s3(api, "offsite", "http://127.0.0.1:9", bucket)
    backup = back_up(api, run_worker, kind="schema-only", destinations=["offsite"])
    assert backup["status"] == "failed"
    refused = retry(api, backup["id"], "offsite")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "no_stored_copy"


def test_verification_and_restore_read_the_offsite_copy_when_the_local_one_is_gone(
        api, app, run_worker, s3_server, bucket, identity, pagila, pg_server):
    add_s3(api, "offsite", s3_server.endpoint_url, bucket,
           encryptTo=[str(identity.to_public())])
    backup = back_up(api, run_worker, destinations=["local", "offsite"])
    assert backup["verification"] == "valid"
    (Path(app.config["BACKUP_DIR"]) / backup["filename"]).unlink()
    assert api.get(f"{BACKUP}/{backup['id']}").get_json()["verification"] == "valid"

    api.post(f"{BACKUP}/verify", json={"backupId": backup["id"], "level": "restore"})
    run_worker()
    verified = api.get(f"{BACKUP}/{backup['id']}").get_json()
    result = verified["verificationResult"]
    assert verified["verification"] == "valid", result
    assert {"decrypt", "test-restore"} <= {check["name"] for check in result["checks"]}
    [note] = result["warnings"]
    assert note.startswith("read the copy at offsite: skipped local (its artifact ")
    assert "is missing" in note

    dry = api.post(f"{BACKUP}/restore", json={"backupId": backup["id"], "dryRun": True,
                                               "targetDatabase": "from_fallback"})
    assert dry.status_code == 200, dry.get_json()
    assert dry.get_json()["analysis"]["integrity"]["warnings"] == [note]

    started = api.post(f"{BACKUP}/restore", json={"backupId": backup["id"],
                                                   "targetDatabase": "from_fallback"})
    assert started.status_code == 202, started.get_json()
    run_worker()
    done = api.get(f"{BACKUP}/restore/{started.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    assert done["result"]["readFrom"] == "offsite"
    assert note in done["result"]["warnings"]
    restored = pg_server.url("from_fallback")
    assert schema_dump(restored) == schema_dump(pagila)
    assert table_fingerprints(restored) == table_fingerprints(pagila)


def test_destination_health_metrics_and_alert_follow_its_copies(
        api, app, run_worker, s3_server, bucket):
    app.config["COPY_RETRY_INTERVALS"] = ()  # no automatic retry: each backup fails once
    offsite = add_s3(api, "offsite", "http://127.0.0.1:9", bucket)
    backups = [back_up(api, run_worker, kind="schema-only", destinations=["local", "offsite"])
               for _ in range(3)]
    assert all(copy_at(backup, "offsite")["status"] == "failed" for backup in backups)

    health = {d["name"]: d["health"] for d in api.get(DESTINATIONS).get_json()["destinations"]}
    assert health["offsite"]["consecutiveFailures"] == 3
    assert "127.0.0.1:9" in health["offsite"]["lastError"]
    assert health["offsite"]["lastErrorAt"] and health["offsite"]["lastGoodCopyAt"] is None
    assert (health["offsite"]["storedCopies"], health["offsite"]["bytesStored"]) == (0, 0)
    local_bytes = sum(copy_at(backup, "local")["size"] for backup in backups)
    assert health["local"] == {**health["local"], "storedCopies": 3, "bytesStored": local_bytes,
                               "consecutiveFailures": 0}
    shown = api.get(f"{DESTINATIONS}/{offsite['id']}").get_json()["health"]
    assert shown == health["offsite"]

    samples = scrape(api)
    assert value(samples, "pgbackup_destination_consecutive_failures", destination="offsite") == 3
    assert value(samples, "pgbackup_destination_copies", destination="offsite",
                 status="failed") == 3
    assert value(samples, "pgbackup_destination_bytes_stored", destination="local") == local_bytes
    assert value(samples, "pgbackup_destination_last_good_copy_timestamp_seconds",
                 destination="offsite") == 0
    assert value(samples, "pgbackup_destination_last_good_copy_timestamp_seconds",
                 destination="local") > 0

    with app.app_context():
        [alert] = [event.alert for event in alerts.evaluate()
                   if (event.kind, event.alert.key) == ("fired", "destination-failing:offsite")]
        assert "destination offsite" in alert.message and "127.0.0.1:9" in alert.message
        assert alert.severity == "critical"

    move(api, offsite, s3_server.endpoint_url)
    assert retry(api, backups[0]["id"], "offsite").status_code == 202
    run_worker()
    health = api.get(f"{DESTINATIONS}/{offsite['id']}").get_json()["health"]
    assert health["consecutiveFailures"] == 0 and health["storedCopies"] == 1
    assert health["lastGoodCopyAt"]
    with app.app_context():
        events = [(event.kind, event.alert.key) for event in alerts.evaluate()]
        assert ("cleared", "destination-failing:offsite") in events
