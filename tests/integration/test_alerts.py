"""Alerts: which problems exist, and one notification when a problem starts, one reminder a
day while it lasts and one when it clears, delivered by a real RQ worker to a real local
HTTP receiver and a real local SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rq import Worker
from rq_scheduler import Scheduler

from commands.scheduler import SyncingScheduler
from jobs.alerts import WATCHDOG_PREFIX, evaluate_alerts
from jobs.queues import BACKUP_QUEUE, NOTIFY_QUEUE, QUEUES, queue, redis_connection
from services import alerts, health, schedules
from services.alerts import HEALTH_CHECKS, Problem
from services.extensions import db
from services.health import HealthCheck
from services.models import Alert, Backup, Restore, Schedule
from tests.support.notifications import (
    CHANNELS,
    SECRET,
    mail,
    run_notifications,
    slack,
    verify_signature,
    webhook,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def add_backup(app, backup_id: str, **fields) -> None:
    with app.app_context():
        db.session.add(Backup(id=backup_id, database="pagila", type="full", **fields))
        db.session.commit()


def create_schedule(api, app, made: datetime, **fields) -> int:
    """A schedule made through the API, its creation time moved to ``made``."""
    body = {"name": "nightly", "frequency": "daily", **fields}
    if body["frequency"] != "cron":
        body.setdefault("time", "02:00")
    schedule_id = api.post("/api/system/backup/schedule", json=body).get_json()["id"]
    with app.app_context():
        db.session.get(Schedule, schedule_id).created_at = naive(made)
        db.session.commit()
    return schedule_id


def evaluate(app, now: datetime, key: str | None = None) -> list[tuple[str, str]]:
    """(event, key) for each event of an evaluation at ``now``, only ``key``'s if given."""
    with app.app_context():
        events = [(event.kind, event.alert.key) for event in alerts.evaluate(now)]
    return [event for event in events if key is None or event[1] == key]


def each_channel(*events: str) -> dict[str, list[str]]:
    return {channel: list(events) for channel in ("webhook", "slack", "email")}


def problems_at(app, now: datetime) -> dict[str, Problem]:
    with app.app_context():
        return alerts.desired_problems(now)


# ---- the whole story ----------------------------------------------------------------

def test_an_alert_fires_once_reminds_once_and_clears_once(app, api, run_worker, receiver,
                                                         smtp):
    mailbox, port = smtp
    for body in (webhook(receiver.url("/ok/hook"), secret=SECRET),
                 slack(receiver.url("/ok/slack")), mail(port)):
        assert api.post(CHANNELS, json=body).status_code == 201
    start = datetime.now(UTC)
    schedule_id = create_schedule(api, app, made=start - 4 * DAY)
    add_backup(app, "backup-old", status="completed", schedule_id=schedule_id,
               created_at=naive(start - 3 * DAY), finished_at=naive(start - 3 * DAY))
    key = f"no-recent-backup:schedule:{schedule_id}"

    def received() -> dict[str, list[str]]:
        """The events each channel got about ``key``."""
        hooks = [r for r in receiver.at("/ok/hook") if r.json["alert"]["key"] == key]
        for request in hooks:
            verify_signature(request, SECRET)
            assert request.headers["X-PGBackup-Event"] == request.json["event"]
        texts = [r.json["text"] for r in receiver.at("/ok/slack") if key in r.json["text"]]
        return {
            "webhook": [r.json["event"] for r in hooks],
            "slack": ["cleared" if text.startswith("RESOLVED") else "reminder"
                      if "(reminder)" in text else "fired" for text in texts],
            "email": [m["X-PGBackup-Event"] for m in mailbox.messages
                      if m["X-PGBackup-Alert"] == key],
        }

    def step(offset: timedelta) -> list[str]:
        events = [kind for kind, _ in evaluate(app, start + offset, key)]
        run_notifications(app)
        return events

    assert step(timedelta(0)) == ["fired"]
    assert received() == each_channel("fired")
    assert step(HOUR) == []
    assert step(23 * HOUR) == []
    assert received() == each_channel("fired")
    assert step(25 * HOUR) == ["reminder"]
    assert step(26 * HOUR) == []
    assert received() == each_channel("fired", "reminder")

    run = api.post(f"/api/system/backup/schedule/{schedule_id}/run").get_json()
    run_worker()  # a real scheduled backup, then time travel to the evaluation's clock
    with app.app_context():
        backup = db.session.get(Backup, run["backupId"])
        assert backup.status == "completed"
        backup.created_at = naive(start + 26 * HOUR)
        db.session.commit()
    assert step(27 * HOUR) == ["cleared"]
    assert step(28 * HOUR) == []
    assert received() == each_channel("fired", "reminder", "cleared")

    subjects = [m["Subject"] for m in mailbox.messages if m["X-PGBackup-Alert"] == key]
    assert [subject.split(":")[0] for subject in subjects] == [
        "[pg-backup] CRITICAL", "[pg-backup] CRITICAL (reminder)", "[pg-backup] RESOLVED"]
    assert all("no recent backup for schedule nightly" in subject for subject in subjects)
    fired = receiver.at("/ok/hook")[0].json
    assert fired["alert"]["severity"] == "critical" and fired["alert"]["clearedAt"] is None
    deliveries = api.get("/api/system/notifications/deliveries").get_json()["deliveries"]
    ours = [d for d in deliveries if d["alertKey"] == key]
    assert len(ours) == 9 and {(d["status"], d["attempts"]) for d in ours} == {("sent", 1)}
    [alert] = [a for a in api.get("/api/system/alerts").get_json()["alerts"] if a["key"] == key]
    assert alert["open"] is False and alert["clearedAt"] is not None


# ---- which problems exist -----------------------------------------------------------

def test_a_schedule_is_late_half_an_interval_after_its_missing_run(app, api):
    friday = datetime(2026, 1, 9, 2, 0, 5, tzinfo=UTC)
    weekdays = create_schedule(api, app, made=friday - 7 * DAY, name="weekdays",
                               frequency="cron", cron="0 2 * * 1-5")
    add_backup(app, "backup-friday", status="completed", schedule_id=weekdays,
               created_at=naive(friday))
    add_backup(app, "backup-corrupted", status="completed", schedule_id=weekdays,
               verification="corrupted", created_at=naive(friday + 3 * DAY))
    add_backup(app, "backup-manual", status="completed", created_at=naive(friday + 3 * DAY))
    key = f"no-recent-backup:schedule:{weekdays}"
    monday_due = datetime(2026, 1, 12, 2, 0, tzinfo=UTC)

    assert key not in problems_at(app, friday + 1.5 * DAY)  # no alert over the weekend
    assert key not in problems_at(app, monday_due + 12 * HOUR - timedelta(seconds=1))
    late = problems_at(app, monday_due + 12 * HOUR)[key]
    assert late == Problem(key, "critical", "no recent backup for schedule weekdays: none "
                           "since 2026-01-09 02:00 UTC, one was due 2026-01-12 02:00 UTC")

    made = datetime(2026, 1, 20, 15, 0, tzinfo=UTC)
    fresh = create_schedule(api, app, made=made, name="fresh")
    fresh_key = f"no-recent-backup:schedule:{fresh}"
    assert fresh_key not in problems_at(app, made + 22 * HOUR)  # due 02:00, late at 14:00
    assert problems_at(app, made + 23 * HOUR)[fresh_key].message.endswith(
        "none yet, one was due 2026-01-21 02:00 UTC")
    api.put(f"/api/system/backup/schedule/{fresh}", json={"enabled": False})
    assert fresh_key not in problems_at(app, made + 23 * HOUR)


def test_failures_and_corruptions_alert_for_a_day_or_until_fixed(app):
    now = datetime.now(UTC)
    add_backup(app, "backup-failed", status="failed", finished_at=naive(now - HOUR),
               error="pg_dump: error: connection lost\nDETAIL: more")
    add_backup(app, "backup-failed-long-ago", status="failed",
               finished_at=naive(now - 25 * HOUR), error="old")
    add_backup(app, "backup-bad", status="completed", verification="corrupted",
               verified_at=naive(now - 2 * HOUR), verification_result={"checks": [
                   {"name": "manifest", "ok": True}, {"name": "sha256", "ok": False}]})
    with app.app_context():
        db.session.add(Restore(id="restore-1", backup_id="backup-bad", mode="new-database",
                               target_database="copy", status="failed",
                               finished_at=naive(now - 3 * HOUR), error="pg_restore: boom"))
        db.session.commit()

    problems = problems_at(app, now)
    assert problems["backup-failed:backup-failed"].message == (
        "full backup backup-failed of pagila failed: pg_dump: error: connection lost")
    assert problems["backup-invalid:backup-bad"].message == (
        "backup backup-bad is corrupted: verification failed (sha256)")
    assert problems["restore-failed:restore-1"].message == (
        "restore restore-1 of backup backup-bad into copy failed: pg_restore: boom")
    assert "backup-failed:backup-failed-long-ago" not in problems
    keys = ["backup-failed:backup-failed", "backup-invalid:backup-bad", "restore-failed:restore-1"]
    assert sorted(k for kind, k in evaluate(app, now) if kind == "fired" and k in keys) == sorted(
        keys)

    with app.app_context():  # one is deleted, one is verified again and found valid
        db.session.delete(db.session.get(Backup, "backup-failed"))
        backup = db.session.get(Backup, "backup-bad")
        backup.verification, backup.verified_at = "valid", naive(now)
        db.session.commit()
    later = [event for event in evaluate(app, now + HOUR) if event[1] in keys]
    assert sorted(later) == [("cleared", "backup-failed:backup-failed"),
                             ("cleared", "backup-invalid:backup-bad")]
    assert [e for e in evaluate(app, now + 20 * HOUR) if e[1] in keys] == []
    assert [e for e in evaluate(app, now + 21 * HOUR) if e[1] in keys] == [
        ("cleared", "restore-failed:restore-1")]  # 24 h after it failed


def test_disk_workers_and_scheduler_alerts_follow_the_health_checks(app):
    with app.app_context():
        checks = {check.name: check for check in health.run_checks()}
        problems = alerts.desired_problems()
    for name in HEALTH_CHECKS:
        check = checks[name]
        expected = (None if check.status == "ok"
                    else Problem(f"health:{name}", check.status, check.reason))
        assert problems.get(f"health:{name}") == expected
    assert {key for key in problems if key.startswith("health:")} <= {
        f"health:{name}" for name in HEALTH_CHECKS}
    assert problems["health:workers"].severity == "critical"  # none runs between tests
    assert "no scheduler is running" in problems["health:scheduler"].message

    now = datetime.now(UTC)
    assert {("fired", "health:workers"), ("fired", "health:scheduler")} <= set(
        evaluate(app, now))
    with app.app_context():  # a worker and a scheduler come to life
        connection = redis_connection()
        worker = Worker(list(QUEUES), connection=connection)
        worker.register_birth()
        scheduler = Scheduler(queue_name=BACKUP_QUEUE, connection=connection)
        scheduler.register_birth()
    try:
        assert {("cleared", "health:workers"), ("cleared", "health:scheduler")} <= set(
            evaluate(app, now + timedelta(minutes=1)))
    finally:
        with app.app_context():
            worker.register_death()
            scheduler.register_death()
    assert {("fired", "health:workers"), ("fired", "health:scheduler")} <= set(
        evaluate(app, now + timedelta(minutes=2)))

def test_a_rising_severity_is_notified_and_a_falling_one_is_not(app, monkeypatch):
    disk = {"status": "warning", "reason": "82% used"}
    monkeypatch.setattr(health, "run_checks", lambda now=None: [
        HealthCheck("disk", disk["status"], disk["reason"]),
        HealthCheck("redis", "critical", "not an alert of its own")])
    now = datetime.now(UTC)
    assert evaluate(app, now) == [("fired", "health:disk")]
    disk.update(status="critical", reason="93% used")
    assert evaluate(app, now + HOUR) == [("fired", "health:disk")]
    disk.update(status="warning", reason="85% used")
    assert evaluate(app, now + 2 * HOUR) == []
    with app.app_context():
        [alert] = alerts.open_alerts()
        assert (alert.severity, alert.message) == ("critical", "85% used")
    assert evaluate(app, now + 25 * HOUR) == [("reminder", "health:disk")]
    disk.update(status="ok")
    assert evaluate(app, now + 26 * HOUR) == [("cleared", "health:disk")]
    assert evaluate(app, now + 27 * HOUR) == []


# ---- registration -------------------------------------------------------------------

def test_the_evaluation_runs_every_minute_and_keeps_one_watchdog_armed(app):
    with app.app_context():
        assert "alerts-evaluate" in schedules.sync_schedules()["added"]
        assert "alerts-evaluate" not in schedules.sync_schedules()["added"]
        [registration] = [job for job in schedules.scheduler().get_jobs(with_times=True)
                          if job[0].id == "alerts-evaluate"]
        assert registration[0].meta["interval"] == 60
        assert registration[0].origin == NOTIFY_QUEUE
        SyncingScheduler(app, queue_name=BACKUP_QUEUE, connection=redis_connection(),
                         interval=1).run(burst=True)
        assert queue(NOTIFY_QUEUE).job_ids == ["alerts-evaluate"]
        [again] = [job for job in schedules.scheduler().get_jobs(with_times=True)
                   if job[0].id == "alerts-evaluate"]
        assert again[1] > registration[1]  # moved on by a minute, still registered
    run_notifications(app)

    def watchdogs() -> list[str]:
        with app.app_context():
            registry = queue(NOTIFY_QUEUE).scheduled_job_registry
            return [job_id for job_id in registry.get_job_ids()
                    if job_id.startswith(WATCHDOG_PREFIX)]

    [first] = watchdogs()
    with app.app_context():
        due = queue(NOTIFY_QUEUE).scheduled_job_registry.get_scheduled_time(first)
        assert timedelta(minutes=4) < due - datetime.now(UTC) <= timedelta(minutes=5)
        assert evaluate_alerts() == {"events": []}  # nothing changed within the minute
    [second] = watchdogs()  # put off again, still one
    assert second != first
    with app.app_context():
        assert db.session.query(Alert).filter_by(key="health:scheduler").count() == 1
