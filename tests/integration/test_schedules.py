"""Schedules through the API, a real rq-scheduler and a real worker; retention in the app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rq_scheduler import Scheduler

from commands.scheduler import SyncingScheduler
from jobs.queues import BACKUP_QUEUE, redis_connection
from services import schedules
from services.extensions import db
from services.models import Backup, Deletion, Schedule, ScheduleRun

DAILY = {"name": "nightly", "type": "full", "frequency": "daily", "time": "02:00",
         "timezone": "Europe/Berlin", "retention": 7, "keepAtLeast": 2, "verify": "integrity"}


def create(api, **overrides):
    return api.post("/api/system/backup/schedule", json={**DAILY, **overrides})


def registrations(app) -> list[str]:
    with app.app_context():
        sched = Scheduler(queue_name=BACKUP_QUEUE, connection=redis_connection())
        return sorted(job.id for job in sched.get_jobs())


def scheduler_pass(app) -> None:
    """One pass of the real scheduler process: sync, then move due jobs to the queue."""
    with app.app_context():
        SyncingScheduler(app, queue_name=BACKUP_QUEUE, connection=redis_connection(),
                         interval=1).run(burst=True)


def make_due(app, schedule_id: int, ago: timedelta) -> None:
    """Time travel: the schedule's next slot lies in the past."""
    with app.app_context():
        schedule = db.session.get(Schedule, schedule_id)
        schedule.next_run_at = (datetime.now(UTC) - ago).replace(tzinfo=None, microsecond=0)
        db.session.commit()
        sched = Scheduler(queue_name=BACKUP_QUEUE, connection=redis_connection())
        for job in sched.get_jobs():
            if job.id.startswith(f"schedule-{schedule_id}-"):
                sched.cancel(job)


def test_create_shows_the_next_run_in_utc_and_in_its_zone(api, app):
    response = create(api)
    assert response.status_code == 201
    body = response.get_json()
    next_utc = datetime.fromisoformat(body["nextRunAt"].replace("Z", "+00:00"))
    local = datetime.fromisoformat(body["nextRunLocal"])
    assert (local.hour, local.minute) == (2, 0) and local.utcoffset() in (
        timedelta(hours=1), timedelta(hours=2))
    assert local == next_utc
    assert body["lastRunAt"] is None and body["lastStatus"] is None
    jobs = registrations(app)
    assert f"schedule-{body['id']}-{next_utc:%Y%m%dT%H%M%SZ}" in jobs
    assert len(jobs) == 3 and "alerts-evaluate" in jobs
    assert any(job.startswith("retention-cleanup-") for job in jobs)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"time": "25:00"}, "25:00"),
        ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
        ({"frequency": "cron", "cron": "61 * * * *"}, "cron"),
        ({"frequency": "weekly"}, "day"),
        ({"type": "differential"}, "type"),
        ({"retention": 0}, "retention"),
        ({"keepAtLeast": 0}, "keepAtLeast"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_schedules_get_a_400_that_says_what_is_wrong(api, overrides, fragment):
    response = create(api, **overrides)
    assert response.status_code == 400, response.get_json()
    assert fragment in response.get_json()["error"]["message"]
    assert api.get("/api/system/backup/schedule").get_json()["schedules"] == []


def test_edit_moves_the_registration_and_delete_removes_it(api, app):
    body = create(api).get_json()
    assert create(api).status_code == 409  # same name
    edited = api.put(f"/api/system/backup/schedule/{body['id']}",
                     json={"time": "03:30", "frequency": "weekly", "dayOfWeek": 0}).get_json()
    assert edited["nextRunAt"] != body["nextRunAt"]
    assert datetime.fromisoformat(edited["nextRunLocal"]).weekday() == 0
    [registration] = [j for j in registrations(app) if j.startswith("schedule-")]
    assert registration.endswith(
        datetime.fromisoformat(edited["nextRunAt"].replace("Z", "+00:00"))
        .strftime("%Y%m%dT%H%M%SZ"))
    disabled = api.put(f"/api/system/backup/schedule/{body['id']}", json={"enabled": False})
    assert disabled.get_json()["nextRunAt"] is None
    assert [j for j in registrations(app) if j.startswith("schedule-")] == []
    api.put(f"/api/system/backup/schedule/{body['id']}", json={"enabled": True})
    assert api.delete(f"/api/system/backup/schedule/{body['id']}").status_code == 200
    assert [j for j in registrations(app) if j.startswith("schedule-")] == []
    assert api.get(f"/api/system/backup/schedule/{body['id']}").status_code == 404
    with app.app_context():  # a registration already in the queue fires nothing
        assert schedules.fire(body["id"], "2026-03-01T01:00:00+00:00") is None


def test_a_flushed_redis_gets_every_enabled_schedule_back(api, app):
    ids = [create(api, name=f"s{i}").get_json()["id"] for i in range(3)]
    api.put(f"/api/system/backup/schedule/{ids[2]}", json={"enabled": False})
    before = registrations(app)
    redis_connection_of(app).flushdb()
    assert registrations(app) == []
    scheduler_pass(app)
    assert registrations(app) == before
    assert not any(job.startswith(f"schedule-{ids[2]}-") for job in before)


def redis_connection_of(app):
    with app.app_context():
        return redis_connection()


def test_a_due_schedule_fires_a_real_backup_once(api, app, run_worker):
    schedule_id = create(api).get_json()["id"]
    make_due(app, schedule_id, ago=timedelta(days=3))  # three missed slots
    scheduler_pass(app)
    scheduler_pass(app)  # a second scheduler pass (or process) fires nothing more
    run_worker()  # fires the slot, then runs the backup and its verification
    with app.app_context():
        [backup] = db.session.query(Backup).all()
        assert (backup.schedule_id, backup.origin, backup.status) == (
            schedule_id, "schedule", "completed")
        assert backup.verification == "valid"
        schedule = db.session.get(Schedule, schedule_id)
        assert schedule.last_status == "completed" and schedule.last_run_at is not None
        assert schedule.next_run_at > datetime.now(UTC).replace(tzinfo=None)
        assert db.session.query(ScheduleRun).count() == 1
    scheduler_pass(app)
    run_worker()
    with app.app_context():
        assert db.session.query(Backup).count() == 1  # the next slot is in the future


def test_a_slot_fires_once_even_when_fired_twice(api, app):
    schedule_id = create(api).get_json()["id"]
    with app.app_context():
        slot = "2026-03-01T01:00:00+00:00"
        first = schedules.fire(schedule_id, slot)
        assert first is not None and first.outcome == "started"
        assert schedules.fire(schedule_id, slot) is None
        assert db.session.query(Backup).count() == 1


def test_a_run_whose_previous_run_is_going_is_skipped_and_recorded(api, app):
    schedule_id = create(api).get_json()["id"]
    first = api.post(f"/api/system/backup/schedule/{schedule_id}/run")
    assert first.status_code == 202 and first.get_json()["outcome"] == "started"
    second = api.post(f"/api/system/backup/schedule/{schedule_id}/run").get_json()
    assert second["outcome"] == "skipped" and first.get_json()["backupId"] in second["reason"]
    shown = api.get(f"/api/system/backup/schedule/{schedule_id}").get_json()
    assert shown["lastStatus"] == "skipped"


def test_manual_backups_are_kept_unless_a_global_policy_is_set(api, app, run_worker):
    ids = [api.post("/api/system/backup", json={"type": "full"}).get_json()["backupId"]
           for _ in range(2)]
    run_worker()
    with app.app_context():
        for backup in db.session.query(Backup).all():
            backup.created_at -= timedelta(days=30)
        db.session.commit()
    kept = api.get("/api/system/backup/retention/preview").get_json()
    assert kept["deleteCount"] == 0
    assert all("by hand" in d["reason"] for d in kept["decisions"])
    app.config["MANUAL_RETENTION_DAYS"] = 7
    policy = api.get("/api/system/backup/retention/preview").get_json()
    assert [d["backupId"] for d in policy["decisions"] if d["delete"]] == [ids[0]]


def test_retention_after_a_scheduled_backup_keeps_the_newest_good_ones(api, app, run_worker):
    schedule_id = create(api, retention=1, keepAtLeast=2).get_json()["id"]
    for _ in range(3):
        api.post(f"/api/system/backup/schedule/{schedule_id}/run")
        run_worker()
    with app.app_context():
        for backup in db.session.query(Backup).all():
            backup.created_at -= timedelta(days=10)
        db.session.commit()
    preview = api.get("/api/system/backup/retention/preview").get_json()
    assert preview["deleteCount"] == 1
    doomed = next(d for d in preview["decisions"] if d["delete"])
    assert "expired" in doomed["reason"]
    api.post(f"/api/system/backup/schedule/{schedule_id}/run")
    run_worker()  # the new backup's follow-up applies the schedule's retention
    with app.app_context():  # kept: the new one and the newest old one (keepAtLeast 2)
        assert db.session.get(Backup, doomed["backupId"]) is None
        assert db.session.query(Backup).count() == 2
        logs = {log.backup_id: log for log in db.session.query(Deletion)}
        assert len(logs) == 2 and logs[doomed["backupId"]].actor == "retention"
        assert "expired" in logs[doomed["backupId"]].reason


def test_a_slot_during_a_restore_over_the_database_is_skipped_and_recorded(api, app):
    from services.models import Restore

    schedule_id = create(api).get_json()["id"]
    with app.app_context():
        db.session.add(Restore(id="restore-x", backup_id="backup-x", mode="overwrite",
                               target_database=app.config["TARGET_DATABASE"],
                               status="running"))
        db.session.commit()
        run = schedules.fire(schedule_id, "2026-03-01T01:00:00+00:00")
        assert run.outcome == "skipped" and "restore-x" in run.reason
        assert db.session.query(Backup).count() == 0
