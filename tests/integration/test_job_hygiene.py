"""Redis stays clean: schedule registrations leave no job behind, every job the app makes
expires once it ends, and workers carry names that rq info and the job listing share."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import Redis
from rq.job import Job
from rq_scheduler import Scheduler

from jobs.queues import BACKUP_QUEUE, FAILURE_TTL, QUEUES, RESULT_TTL, queue, redis_connection
from services import schedules
from tests.support.workers import install_gated_pg_dump, wait_for

BACKUP = "/api/system/backup"
SCHEDULE = f"{BACKUP}/schedule"
DAILY = {"name": "a", "type": "full", "frequency": "daily", "time": "02:00"}


def redis(app) -> Redis:
    with app.app_context():
        return redis_connection()


def job_hashes(app, prefix: str = "") -> dict[str, dict[str, str]]:
    """Every job hash in Redis whose id starts with ``prefix``, by id."""
    connection = redis(app)
    found = {}
    for key in connection.scan_iter(match=f"rq:job:{prefix}*"):
        if connection.type(key) == b"hash":
            fields = connection.hgetall(key)
            found[key.decode().removeprefix("rq:job:")] = {
                name.decode(): value.decode(errors="replace") for name, value in fields.items()
                if name in (b"status", b"result_ttl", b"failure_ttl")}
    return found


def registered(app) -> set[str]:
    """What rq-scheduler holds."""
    return {member.decode() for member in redis(app).zrange(Scheduler.scheduled_jobs_key, 0, -1)}


def slot_id(schedule: dict) -> str:
    due = datetime.fromisoformat(schedule["nextRunAt"].replace("Z", "+00:00"))
    return f"schedule-{schedule['id']}-{due:%Y%m%dT%H%M%SZ}"


# ---- schedule registrations -----------------------------------------------------------

def test_editing_disabling_and_deleting_schedules_leaves_no_job_behind(app, api):
    ids = [api.post(SCHEDULE, json={**DAILY, "name": name}).get_json()["id"]
           for name in ("a", "b", "c")]
    a, b, c = (f"{SCHEDULE}/{schedule_id}" for schedule_id in ids)
    assert api.put(a, json={"time": "03:00"}).status_code == 200  # a new slot
    assert api.put(a, json={"frequency": "hourly"}).status_code == 200  # another
    assert api.put(b, json={"enabled": False}).status_code == 200
    assert api.put(b, json={"enabled": True}).status_code == 200
    assert api.put(b, json={"enabled": False}).status_code == 200
    assert api.delete(c).status_code == 200

    left = job_hashes(app, "schedule-")
    assert set(left) == {slot_id(api.get(a).get_json())}
    assert set(left) <= registered(app)
    assert [fields["status"] for fields in left.values()] == ["scheduled"]
    assert api.delete(a).status_code == 200
    assert job_hashes(app, "schedule-") == {}
    assert {job_id.split("-")[0] for job_id in registered(app)} == {"alerts", "retention"}


def test_registrations_left_by_older_versions_are_cleaned_up(app):
    """Before this version, cancelling kept the job, and alert evaluation kept its result
    for ever: the scheduler deletes the first when it starts, sync_schedules remakes the
    second."""
    with app.app_context():
        sched = schedules.scheduler()
        due = datetime(2030, 1, 1)
        old, young = (sched.enqueue_at(due, "jobs.schedule.fire_schedule", n, "slot",
                                       job_id=f"schedule-{n}-20300101T000000Z")
                      for n in (98, 99))
        for job in (old, young):
            sched.cancel(job)
        old.created_at = datetime.now(UTC) - timedelta(minutes=5)
        old.save()
        sched.schedule(datetime.now(UTC), "jobs.alerts.evaluate_alerts", interval=60,
                       id=schedules.ALERTS_JOB_ID, queue_name="notifications")

    result = app.test_cli_runner().invoke(args=["scheduler", "--burst"])
    assert result.exit_code == 0, result.output
    assert set(job_hashes(app, "schedule-")) == {young.id}  # it may be one being made
    with app.app_context():
        alerts = Job.fetch(schedules.ALERTS_JOB_ID, connection=redis_connection())
        assert (alerts.result_ttl, alerts.failure_ttl) == (RESULT_TTL, FAILURE_TTL)
        assert schedules.sync_schedules() == {"added": [], "removed": []}  # made once


# ---- every job expires --------------------------------------------------------------

def test_every_job_the_app_makes_expires_once_it_ends(
        app, api, run_worker, receiver, pg_server, tmp_path, request, caplog):
    app.config["COPY_RETRY_INTERVALS"] = ()  # the failed copy is retried by hand below
    request.addfinalizer(lambda: pg_server.drop_database("hygiene_copy"))
    caplog.set_level(logging.INFO, logger="rq.worker")
    assert api.post("/api/system/notifications/channels", json={
        "name": "hook", "kind": "webhook", "config": {"url": receiver.url("/ok/hook")}}
    ).status_code == 201
    nas = tmp_path / "nas"
    nas.mkdir()
    assert api.post("/api/system/destinations", json={
        "name": "nas", "type": "local", "path": str(nas), "required": False}).status_code == 201
    nas.rmdir()  # unmounted: its copy fails
    assert api.post(SCHEDULE, json=DAILY).status_code == 201

    good_url = app.config["DATABASE_URL"]
    app.config["DATABASE_URL"] = pg_server.url("no_such_database")
    failing = api.post(BACKUP, json={"type": "full"}).get_json()["jobId"]
    run_worker()
    app.config["DATABASE_URL"] = good_url
    _make_registrations_due(app)
    backup_id = api.post(BACKUP, json={"type": "full", "destinations": ["local", "nas"]}
                         ).get_json()["backupId"]
    run_worker()  # the slot and its backup, the clean-up, alert evaluation (the failed
    # backup is notified), the backup

    nas.mkdir()
    assert api.post(f"{BACKUP}/{backup_id}/copies/nas/retry").status_code == 202
    assert api.post(f"{BACKUP}/verify", json={"backupId": backup_id}).status_code == 202
    assert api.post(f"{BACKUP}/restore", json={
        "backupId": backup_id, "targetDatabase": "hygiene_copy"}).status_code == 202
    assert api.post("/api/system/destinations/rescan", json={}).status_code == 202
    run_worker()

    hashes = job_hashes(app)
    kinds = {job_id.split("-")[0] for job_id in hashes}
    assert kinds >= {"backup", "schedule", "retention", "alerts", "copy", "verify", "restore",
                     "rescan", "delivery"}, kinds
    assert hashes[failing]["status"] == "failed"
    pending = registered(app) | _in_rq_scheduler(app)
    connection = redis(app)
    for job_id, fields in hashes.items():
        assert (int(fields["result_ttl"]), int(fields["failure_ttl"])) == (
            RESULT_TTL, FAILURE_TTL), job_id
        ttl = connection.ttl(f"rq:job:{job_id}")
        if fields["status"] == "finished":
            assert RESULT_TTL - 600 < ttl <= RESULT_TTL, (job_id, ttl)
        elif fields["status"] == "failed":
            assert FAILURE_TTL - 600 < ttl <= FAILURE_TTL, (job_id, ttl)
        else:  # waiting for its time: listed where it will be taken from, not an orphan
            assert fields["status"] == "scheduled" and job_id in pending, (job_id, fields)
    for key in connection.scan_iter(match="rq:results:*"):
        assert connection.ttl(key) > 0, key
    assert "never expire" not in caplog.text
    assert f"job alerts-evaluate result is kept for {RESULT_TTL} seconds" in caplog.text


def _make_registrations_due(app) -> None:
    """Time travel: every rq-scheduler registration is due, and the scheduler moves them to
    their queues."""
    with app.app_context():
        sched = Scheduler(queue_name=BACKUP_QUEUE, connection=redis_connection())
        for job in sched.get_jobs():
            sched.change_execution_time(job, datetime.now(UTC) - timedelta(seconds=1))
        sched.enqueue_jobs()


def _in_rq_scheduler(app) -> set[str]:
    """What RQ's own scheduler holds (the alerts watchdog, copy retries)."""
    with app.app_context():
        return {job_id for name in QUEUES
                for job_id in queue(name).scheduled_job_registry.get_job_ids()}


# ---- worker names -------------------------------------------------------------------

def test_rq_info_and_the_job_listing_name_the_worker_that_runs_a_job(
        app, api, env, tmp_path, monkeypatch, request):
    gate = tmp_path / "go-on"
    install_gated_pg_dump(Path(env["PATH"].split(os.pathsep)[0]), 1, gate)
    log = tmp_path / "worker.log"
    monkeypatch.setenv("WORKER_LOG", str(log))
    worker = request.getfixturevalue("worker")
    name = f"{socket.gethostname()}.{worker.pid}.{','.join(QUEUES)}"
    backup = api.post(BACKUP, json={"type": "full"}).get_json()
    job_url = f"/api/system/jobs/{backup['jobId']}"
    wait_for(lambda: api.get(job_url).get_json()["rqStatus"] == "started")

    info = subprocess.run(
        [str(Path(sys.executable).with_name("rq")), "info", "--url", app.config["REDIS_URL"],
         "--only-workers"], capture_output=True, text=True, check=True, timeout=60).stdout
    [line] = [line for line in info.splitlines() if line.startswith(f"{name} (")]
    assert "busy" in line and f" {worker.pid}):" in line
    cli = app.test_cli_runner()
    listed = cli.invoke(args=["jobs", "list", "--status", "started"]).output.splitlines()
    assert listed[0].split("\t")[:5] == [backup["jobId"], "backup", "started", "backups", name]
    shown = json.loads(cli.invoke(args=["jobs", "show", backup["jobId"], "--json"]).output)
    assert (shown["worker"], shown["status"], shown["rqStatus"]) == (name, "running", "started")

    gate.touch()
    wait_for(lambda: api.get(f"{BACKUP}/{backup['backupId']}").get_json()["status"]
             == "completed", timeout=120)
    wait_for(lambda: "result is kept" in log.read_text())
    text = log.read_text()
    assert f"Worker {name}: job {backup['jobId']} result is kept for {RESULT_TTL} seconds" \
        in text
    assert "never expire" not in text
