"""Each health check turns warning or critical under its real cause, and ok without it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.extensions import db
from services.formatting import days_left
from services.models import Backup
from tests.support.health import checks, status
from tests.support.workers import kill_tree, start_scheduler, wait_for
from tools.localservices import RedisServer, free_port

CHECK_NAMES = ["database", "client-tools", "redis", "workers", "scheduler", "disk",
               "destinations", "backup-age", "failed-jobs", "change-capture"]
REAL_PG_DUMP = shutil.which("pg_dump") or "pg_dump"
REAL_PG_RESTORE = shutil.which("pg_restore") or "pg_restore"
FAILING_PG_DUMP = f"""#!/bin/sh
case "$*" in *--version*) exec {REAL_PG_DUMP} "$@";; esac
echo "pg_dump: error: could not write: No space left on device" >&2
exit 1
"""


def make_backup(api, run_worker, kind: str = "full") -> str:
    """A real backup of Pagila, taken by an in-process RQ worker."""
    response = api.post("/api/system/backup", json={"type": kind})
    assert response.status_code == 202
    run_worker()
    return response.get_json()["backupId"]


def age_backup(app, backup_id: str, by: timedelta) -> None:
    """Time travel: the backup was taken ``by`` earlier."""
    with app.app_context():
        backup = db.session.get(Backup, backup_id)
        backup.created_at -= by
        backup.started_at -= by
        backup.finished_at -= by
        db.session.commit()


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


# ---- all ok, and the endpoint -----------------------------------------------------------

def test_everything_is_ok_with_a_worker_a_scheduler_and_a_fresh_backup(
        app, api, worker, scheduler):
    # The test machine's disk is not under test here; the disk tests below lower these.
    app.config.update(DISK_WARNING_PERCENT=100, DISK_CRITICAL_PERCENT=100)
    backup_id = api.post("/api/system/backup", json={"type": "full"}).get_json()["backupId"]

    def verified() -> bool:
        with app.app_context():
            db.session.expire_all()
            return db.session.get(Backup, backup_id).verification == "valid"

    wait_for(verified)
    started = time.monotonic()
    response = api.get("/api/system/health")
    elapsed = time.monotonic() - started
    body = response.get_json()
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert [check["name"] for check in body["checks"]] == CHECK_NAMES
    assert {check["name"]: check["status"] for check in body["checks"]} == dict.fromkeys(
        CHECK_NAMES, "ok"), body
    assert body["status"] == "ok"
    assert datetime.fromisoformat(body["checkedAt"].replace("Z", "+00:00")) <= datetime.now(UTC)
    assert elapsed < 1, f"the health checks took {elapsed:.2f} s"
    by_name = {check["name"]: check for check in body["checks"]}
    assert by_name["backup-age"]["data"]["full"]["backupId"] == backup_id
    assert by_name["database"]["data"]["serverVersion"].split(".")[0] == by_name[
        "client-tools"]["data"]["pgDump"]["version"].split(".")[0]
    assert set(by_name["workers"]["data"]["queues"]) == {"notifications", "restores", "backups",
                                                        "verifications"}
    assert all(check["reason"] for check in body["checks"])


def test_health_needs_authentication_and_healthz_reveals_nothing(client):
    assert client.get("/api/system/health").status_code == 401
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_a_check_that_raises_is_critical_with_its_error_not_a_500(app, api):
    app.config["DISK_WARNING_PERCENT"] = "eighty"  # a misconfiguration the check trips on
    response = api.get("/api/system/health")
    assert response.status_code == 200
    disk = {check["name"]: check for check in response.get_json()["checks"]}["disk"]
    assert disk["status"] == "critical"
    assert disk["reason"].startswith("the disk check failed: TypeError")
    assert response.get_json()["status"] == "critical"


# ---- each cause ---------------------------------------------------------------------------

def test_database_unreachable_is_critical_without_the_password(app, api):
    app.config["DATABASE_URL"] = (
        f"postgresql://backup:s3cret-pw@127.0.0.1:{free_port()}/shop")
    response = api.get("/api/system/health")
    assert response.status_code == 200
    body = response.get_json()
    by_name = {check["name"]: check for check in body["checks"]}
    assert by_name["database"]["status"] == "critical"
    assert "cannot connect to the protected database" in by_name["database"]["reason"]
    assert "Troubleshooting" in by_name["database"]["reason"]
    assert by_name["client-tools"]["status"] == "warning"  # nothing to compare with
    assert body["status"] == "critical"
    assert "s3cret-pw" not in json.dumps(body)


def test_missing_pg_dump_is_critical(app, tmp_path, monkeypatch):
    bindir = tmp_path / "only-restore"
    bindir.mkdir()
    (bindir / "pg_restore").symlink_to(REAL_PG_RESTORE)
    monkeypatch.setenv("PATH", str(bindir))
    check = checks(app)["client-tools"]
    assert check.status == "critical"
    assert check.reason.startswith("pg_dump not found on PATH")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert checks(app)["client-tools"].reason.startswith("pg_dump and pg_restore not found")


def test_a_pg_dump_older_than_the_server_is_critical_and_a_newer_one_is_fine(
        app, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_restore").symlink_to(REAL_PG_RESTORE)
    fake = bindir / "pg_dump"
    monkeypatch.setenv("PATH", str(bindir))
    server_major = checks(app)["database"].data["serverVersion"].split(".")[0]

    script(fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.0'\n")
    check = checks(app)["client-tools"]
    assert check.status == "critical"
    assert f"pg_dump 14 cannot dump a PostgreSQL {server_major} server" in check.reason

    script(fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 99.1'\n")
    assert status(app, "client-tools") == "ok"


def test_redis_down_is_critical_and_the_checks_that_need_it_say_so(app, api):
    redis = RedisServer().start()
    try:
        app.config["REDIS_URL"] = redis.url
        assert status(app, "redis") == "ok"
    finally:
        redis.stop()
    response = api.get("/api/system/health")
    assert response.status_code == 200
    by_name = {check["name"]: check for check in response.get_json()["checks"]}
    assert by_name["redis"]["status"] == "critical"
    assert by_name["redis"]["reason"].startswith("Redis at 127.0.0.1:")
    for name in ("workers", "scheduler"):
        assert by_name[name]["status"] == "critical"
        assert "Redis is unreachable" in by_name[name]["reason"]
    assert by_name["failed-jobs"]["status"] == "ok"
    assert "Redis is down" in by_name["failed-jobs"]["reason"]


def test_disk_turns_warning_then_critical_at_its_thresholds(app):
    app.config.update(DISK_WARNING_PERCENT=100, DISK_CRITICAL_PERCENT=100)
    assert status(app, "disk") == "ok"
    app.config["DISK_WARNING_PERCENT"] = 0
    check = checks(app)["disk"]
    assert check.status == "warning"
    assert "warning at 0%" in check.reason and "Troubleshooting" in check.reason
    app.config["DISK_CRITICAL_PERCENT"] = 0
    assert status(app, "disk") == "critical"


def test_disk_warns_when_the_backup_growth_leaves_few_days(app, api, run_worker):
    app.config.update(DISK_WARNING_PERCENT=100, DISK_CRITICAL_PERCENT=100)
    backup_id = make_backup(api, run_worker)
    with app.app_context():
        size = db.session.get(Backup, backup_id).size
    check = checks(app)["disk"]
    assert check.status == "ok"
    assert check.data["growthBytesPerDay"] == round(size / 7)
    assert check.data["daysLeft"] == round(check.data["freeBytes"] / (size / 7), 1)
    app.config["DISK_WARNING_DAYS"] = check.data["daysLeft"] * 2
    check = checks(app)["disk"]
    assert check.status == "warning"
    assert f"{days_left(check.data['daysLeft'])} left at" in check.reason  # words, capped


def test_an_unusable_backup_dir_is_critical(app, tmp_path):
    # Tests run as root, which chmod does not stop: a parent that is a file stops everyone.
    (tmp_path / "afile").write_text("not a directory")
    app.config["BACKUP_DIR"] = str(tmp_path / "afile" / "backups")
    result = checks(app)
    assert result["disk"].status == "critical"
    assert "directory permissions" in result["disk"].reason
    assert "Not a directory" in result["disk"].reason
    assert result["destinations"].status == "critical"
    [local] = result["destinations"].data["destinations"]
    assert local["name"] == "local" and local["status"] == "critical"


def test_backup_age_without_schedules_follows_the_24_hour_rule(app, api, run_worker):
    check = checks(app)["backup-age"]
    assert check.status == "setup"  # a first run (tests/integration/test_first_run.py)
    assert "no full backup yet" in check.reason
    backup_id = make_backup(api, run_worker)
    assert status(app, "backup-age") == "ok"
    age_backup(app, backup_id, timedelta(days=2))
    check = checks(app)["backup-age"]
    assert check.status == "warning"
    assert "2.0 days old" in check.reason and "Troubleshooting" in check.reason
    assert check.data["full"]["ageSeconds"] >= 2 * 86400


def test_a_corrupted_backup_does_not_count(app, api, run_worker):
    backup_id = make_backup(api, run_worker)
    with app.app_context():
        db.session.get(Backup, backup_id).verification = "corrupted"
        db.session.commit()
    assert status(app, "backup-age") == "critical"


def test_backup_age_against_the_schedules_interval(app, api, run_worker):
    created = api.post("/api/system/backup/schedule", json={
        "name": "nightly", "type": "full", "frequency": "daily", "time": "02:00"})
    assert created.status_code == 201
    check = checks(app)["backup-age"]
    assert check.status == "setup"  # just scheduled, no backup yet: a first run, not late
    assert checks(app, datetime.now(UTC) + timedelta(days=2))["backup-age"].status == "warning"

    backup_id = make_backup(api, run_worker)
    check = checks(app)["backup-age"]
    assert check.status == "ok"
    assert check.data["full"]["intervalSeconds"] == 86400
    age_backup(app, backup_id, timedelta(days=2))
    check = checks(app)["backup-age"]
    assert check.status == "warning"
    assert "over 1.5 times the interval" in check.reason
    age_backup(app, backup_id, timedelta(days=2))
    assert status(app, "backup-age") == "critical"

    api.post("/api/system/backup/schedule", json={
        "name": "hourly-schema", "type": "schema-only", "frequency": "hourly", "time": "00:15"})
    schema_id = make_backup(api, run_worker, "schema-only")
    age_backup(app, schema_id, timedelta(hours=2))
    check = checks(app)["backup-age"]
    assert check.data["schema-only"]["intervalSeconds"] == 3600
    assert "the newest good schema-only backup is 2.0 h old, over 1.5 times" in check.reason


def test_a_killed_worker_leaves_its_queues_without_a_live_worker(app, worker):
    kill_tree(worker.pid)
    worker.wait()
    check = checks(app)["workers"]
    assert check.status == "critical"
    assert check.reason.startswith(
        "no worker listens on notifications, restores, backups, verifications")
    assert "died" in check.reason
    assert check.data["dead"]


def test_no_scheduler_is_critical_stopped_or_killed(app, env):
    check = checks(app)["scheduler"]
    assert check.status == "critical"
    assert check.reason.startswith("no scheduler is running: schedules")
    process = start_scheduler(env)
    try:
        wait_for(lambda: status(app, "scheduler") == "ok")
        process.send_signal(signal.SIGTERM)  # it registers its death
        process.wait(30)
        assert status(app, "scheduler") == "critical"
        process = start_scheduler(env)
        wait_for(lambda: status(app, "scheduler") == "ok")
        kill_tree(process.pid)  # a crash: its key expires after its interval + 10 s
        wait_for(lambda: status(app, "scheduler") == "critical", timeout=30)
    finally:
        kill_tree(process.pid)
        process.wait()


def test_a_failed_backup_is_a_warning(app, api, run_worker, tmp_path, monkeypatch):
    assert status(app, "failed-jobs") == "ok"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script(bindir / "pg_dump", FAILING_PG_DUMP)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    backup_id = make_backup(api, run_worker)
    with app.app_context():
        assert db.session.get(Backup, backup_id).status == "failed"
    check = checks(app)["failed-jobs"]
    assert check.status == "warning"
    assert check.data["backups"] == 1 and check.data["rqFailed"]["backups"] == 1
    assert check.reason.startswith("failed in the last 24 h: 1 backup, 1 RQ job (backups: 1)")
    assert checks(app, datetime.now(UTC) + timedelta(days=2))["failed-jobs"].status == "ok"
