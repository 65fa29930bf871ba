"""/metrics against a real catalog, real jobs and a real Redis: the numbers are the catalog's."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from itertools import product

import pytest
from sqlalchemy import select

from jobs.queues import BACKUP_QUEUE, QUEUES
from pgbackup import __version__
from services.extensions import db
from services.metrics import DURATION_BUCKETS, QUEUE_STATES
from services.models import BACKUP_TYPES, RESTORE_MODES, STATUSES, VERIFY_LEVELS, Backup, Restore
from tests.support.metrics import Samples, has, scrape, value

SCHEDULE = {"type": "full", "frequency": "daily", "time": "02:00", "verify": "integrity"}


def create_backup(api, kind: str) -> str:
    response = api.post("/api/system/backup", json={"type": kind})
    assert response.status_code == 202
    return response.get_json()["backupId"]


def create_schedule(api, name: str, enabled: bool = True) -> int:
    response = api.post("/api/system/backup/schedule",
                        json={**SCHEDULE, "name": name, "enabled": enabled})
    assert response.status_code == 201
    return response.get_json()["id"]


def timestamp(at: datetime) -> float:
    return at.replace(tzinfo=UTC).timestamp()


def fill_the_catalog(app, api, run_worker, pg_server) -> None:
    """A scheduled, a manual full and a schema-only backup (all verified), a restore-level
    verification, a rehearsal, a failed backup, a queued one and two idle schedules."""
    nightly = create_schedule(api, "nightly")
    create_schedule(api, "never-run")
    create_schedule(api, "paused", enabled=False)
    assert api.post(f"/api/system/backup/schedule/{nightly}/run").status_code == 202
    full = create_backup(api, "full")
    create_backup(api, "schema-only")
    run_worker()  # the backups, then their integrity checks
    verify = {"backupId": full, "level": "restore"}
    assert api.post("/api/system/backup/verify", json=verify).status_code == 202
    run_worker()
    rehearse = {"backupId": full, "dryRun": True, "rehearse": True}
    assert api.post("/api/system/backup/restore", json=rehearse).status_code == 202
    run_worker()
    app.config["DATABASE_URL"] = pg_server.url("no_such_database")
    create_backup(api, "full")
    run_worker()
    create_backup(api, "schema-only")  # no worker runs it: it stays queued


def catalog(app) -> tuple[list[Backup], list[Restore]]:
    with app.app_context():
        rows = (db.session.scalars(select(Backup)).all(), db.session.scalars(select(Restore)).all())
        db.session.expunge_all()
    return list(rows[0]), list(rows[1])


def assert_backup_series(samples: Samples, backups: list[Backup]) -> None:
    counts = Counter((b.type, b.status) for b in backups)
    assert counts == {("full", "completed"): 2, ("schema-only", "completed"): 1,
                      ("full", "failed"): 1, ("schema-only", "queued"): 1}
    for kind, status in product(BACKUP_TYPES, STATUSES):
        labels = {"type": kind, "status": status}
        assert value(samples, "pgbackup_backups", **labels) == counts[kind, status]
        assert value(samples, "pgbackup_backup_bytes", **labels) == sum(
            b.size or 0 for b in backups if (b.type, b.status) == (kind, status))
    assert value(samples, "pgbackup_backup_bytes", type="full", status="completed") > 0

    by_verification = Counter(b.verification for b in backups)
    assert by_verification == {"valid": 3, "unverified": 2}
    for state in ("unverified", "valid", "corrupted"):
        assert value(samples, "pgbackup_backups_by_verification",
                     verification=state) == by_verification[state]
    verifications = Counter((b.verification_result["level"], b.verification_result["isValid"])
                            for b in backups if b.verification_result)
    assert verifications == {("integrity", True): 2, ("restore", True): 1}
    for level, result in product(VERIFY_LEVELS, ("valid", "corrupted")):
        assert value(samples, "pgbackup_verifications", level=level, result=result) == (
            verifications[level, result == "valid"])


def assert_success_and_duration_series(samples: Samples, backups: list[Backup]) -> None:
    completed = [b for b in backups if b.status == "completed"]
    [scheduled] = [b for b in completed if b.origin == "schedule"]
    assert value(samples, "pgbackup_schedule_last_success_timestamp_seconds",
                 schedule="nightly") == pytest.approx(timestamp(scheduled.finished_at), abs=1e-3)
    assert value(samples, "pgbackup_schedule_last_success_timestamp_seconds",
                 schedule="never-run") == 0
    assert not has(samples, "pgbackup_schedule_last_success_timestamp_seconds",
                   schedule="paused")
    assert not has(samples, "pgbackup_last_success_timestamp_seconds", type="incremental")
    for kind in ("full", "schema-only"):  # the story takes no incremental
        of_kind = [b for b in completed if b.type == kind]
        newest = max(of_kind, key=lambda b: b.finished_at)
        assert value(samples, "pgbackup_last_success_timestamp_seconds", type=kind) == (
            pytest.approx(timestamp(newest.finished_at), abs=1e-3))
        assert value(samples, "pgbackup_last_backup_duration_seconds", type=kind) == (
            pytest.approx(newest.duration_ms / 1000))
        assert_histogram(samples, "pgbackup_backup_duration_seconds", {"type": kind},
                         [b.duration_ms for b in of_kind])


def assert_restore_and_queue_series(samples: Samples, restores: list[Restore]) -> None:
    [restore] = restores
    assert (restore.mode, restore.status) == ("rehearsal", "completed")
    for mode, status in product(RESTORE_MODES, STATUSES):
        assert value(samples, "pgbackup_restores", mode=mode, status=status) == (
            (mode, status) == ("rehearsal", "completed"))
    assert_histogram(samples, "pgbackup_restore_duration_seconds", {"mode": "rehearsal"},
                     [restore.duration_ms])
    assert_histogram(samples, "pgbackup_restore_duration_seconds", {"mode": "overwrite"}, [])

    assert value(samples, "pgbackup_redis_up") == 1
    pending = {(BACKUP_QUEUE, "queued"), (BACKUP_QUEUE, "failed")}  # the last two backups
    for queue_name, state in product(QUEUES, QUEUE_STATES):
        assert value(samples, "pgbackup_queue_jobs", queue=queue_name, state=state) == (
            (queue_name, state) in pending)
    assert value(samples, "pgbackup_info", version=__version__) == 1


def assert_histogram(samples: Samples, name: str, labels: dict[str, str],
                     durations_ms: list[int]) -> None:
    """Cumulative buckets; +Inf and _count are the number of durations, _sum their sum."""
    assert value(samples, f"{name}_count", **labels) == len(durations_ms)
    assert value(samples, f"{name}_sum", **labels) == pytest.approx(sum(durations_ms) / 1000)
    assert value(samples, f"{name}_bucket", le="+Inf", **labels) == len(durations_ms)
    for bound in DURATION_BUCKETS:
        assert value(samples, f"{name}_bucket", le=str(float(bound)), **labels) == sum(
            ms <= bound * 1000 for ms in durations_ms)


def check_the_whole_story(app, api, run_worker, pg_server) -> None:
    fill_the_catalog(app, api, run_worker, pg_server)
    samples = scrape(api)
    backups, restores = catalog(app)
    assert_backup_series(samples, backups)
    assert_success_and_duration_series(samples, backups)
    assert_restore_and_queue_series(samples, restores)


def test_metrics_report_the_catalog_and_the_queues(app, api, run_worker, pg_server):
    check_the_whole_story(app, api, run_worker, pg_server)


class TestOnAPostgreSQLCatalog:
    """The same series when the catalog lives in PostgreSQL (JSON and grouping SQL differ)."""

    @pytest.fixture
    def app(self, pagila, redis_server, pg_server, tmp_path):
        import redis as redis_lib

        from app import create_app

        redis_lib.Redis.from_url(redis_server.url).flushdb()
        pg_server.drop_database("metrics_catalog")
        app = create_app({
            "DATABASE_URL": pagila,
            "REDIS_URL": redis_server.url,
            "METADATA_DATABASE_URL": pg_server.create_database("metrics_catalog"),
            "BACKUP_DIR": str(tmp_path / "backups"),
            "SECRET_KEY": "test-secret-key-" + "x" * 32,
            "TESTING": True,
        })
        yield app
        with app.app_context():
            db.engine.dispose()
        pg_server.drop_database("metrics_catalog")

    def test_the_same_series(self, app, api, run_worker, pg_server):
        check_the_whole_story(app, api, run_worker, pg_server)


def test_duration_buckets_are_cumulative_and_inclusive(app, api, run_worker):
    for _ in range(3):
        create_backup(api, "full")
    run_worker()
    durations_ms = [5_000, 61_000, 9_000_000]  # on a bound, between two, beyond the last
    with app.app_context():
        rows = db.session.scalars(select(Backup).order_by(Backup.finished_at)).all()
        for row, duration_ms in zip(rows, durations_ms, strict=True):
            row.duration_ms = duration_ms
        db.session.commit()
    samples = scrape(api)
    assert_histogram(samples, "pgbackup_backup_duration_seconds", {"type": "full"}, durations_ms)
    assert value(samples, "pgbackup_backup_duration_seconds_bucket", type="full", le="5.0") == 1
    assert value(samples, "pgbackup_backup_duration_seconds_bucket", type="full",
                 le="7200.0") == 2
    assert value(samples, "pgbackup_last_backup_duration_seconds", type="full") == 9_000


def test_metrics_need_authentication(client):
    for headers in ({}, {"Authorization": "Bearer pbm_not-a-token"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_without_redis_the_catalog_series_are_still_served(app, api, run_worker):
    create_backup(api, "full")
    run_worker()
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("redis")
    samples = scrape(api)
    assert value(samples, "pgbackup_redis_up") == 0
    assert not any(name == "pgbackup_queue_jobs" for name, _ in samples)
    assert value(samples, "pgbackup_backups", type="full", status="completed") == 1
    assert value(samples, "pgbackup_backup_duration_seconds_count", type="full") == 1
