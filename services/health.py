"""System health: each check says ok, setup, warning or critical, and why in one sentence.

``GET /api/system/health`` runs every check on each call, so they are quick and use short
timeouts. A check that raises is reported as critical with the error, never as a 500.
Every reason that is not ok ends with a troubleshooting hint naming the fix: a command, a
setting or a dashboard action.

``setup`` is a new install's first run, not a failure: no full backup has ever been taken
(and none is late). The backup-age check reports it with the first steps still to take;
it is better than a warning, so any real problem outranks it, and alerts never fire for it.
"""

from __future__ import annotations

import getpass
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import psycopg
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq_scheduler import Scheduler
from sqlalchemy import func, select

from jobs.queues import QUEUES, queue_unavailable_message
from jobs.reconcile import dead_worker_reason
from pgbackup import BackupError, LocalStorage
from pgbackup.pgdump import pg_dump_version
from services import artifact_presence, capture_health
from services.backups import target_connection
from services.extensions import db
from services.formatting import days_left as describe_days_left
from services.formatting import filesize
from services.json_shapes import iso
from services.models import ACTIVE_STATUSES, BACKUP_TYPES, UNRESTORABLE, Backup, Restore, Schedule
from services.schedules import as_utc, timing

log = logging.getLogger(__name__)
STATUSES = ("ok", "setup", "warning", "critical")  # best to worst
CONNECT_TIMEOUT = 5  # seconds, for PostgreSQL
REDIS_TIMEOUT = 2  # seconds, to connect and per command
CLIENT_TOOLS = {"pg_dump": "pgDump", "pg_restore": "pgRestore"}  # tool: key in data
GROWTH_WINDOW = timedelta(days=7)
FAILURE_WINDOW = timedelta(hours=24)
FAILED_JOBS_SCANNED = 200  # newest entries of each failed-job registry
UNSCHEDULED_MAX_AGE = timedelta(hours=24)  # the dashboard's rule when nothing is scheduled
WARNING_FACTOR, CRITICAL_FACTOR = 1.5, 3  # times a schedule's interval
RUNS_SAMPLED = 8  # consecutive runs whose longest gap is a schedule's interval
SCHEDULER_PREFIX = Scheduler.redis_scheduler_namespace_prefix
# As the Procfile's worker line runs it (tests/unit/test_health_hints.py keeps them equal).
WORKER_COMMAND = ("rq worker --url \"$REDIS_URL\" --worker-class jobs.worker.BackupWorker "
                  "--with-scheduler notifications restores backups verifications")
WORKER_HINT = f"start one: {WORKER_COMMAND}"
SCHEDULER_HINT = "start one: flask --app app scheduler"
NEW_BACKUP = ("Backups → New backup in the dashboard, or "
              "flask --app app backup create --type full --wait")
NEW_SCHEDULE = "Schedules → New schedule → Nightly full in the dashboard"
LATE_FIX = ("a schedule runs only while a scheduler and a worker on the backups queue run: see "
            "the scheduler and workers checks and the schedule's last status in Schedules; "
            f"take one now: {NEW_BACKUP}")
NO_GOOD_FULL_FIX = (f"take one now: {NEW_BACKUP}; if it fails, its error is on the backup "
                    "(and in the failed-jobs check): fix what it names")
MISSING_FIX = ("put a missing backup's files back into BACKUP_DIR and verify it (Backups → "
               "Verify), or delete it")

Outcome = tuple[str, str, dict[str, Any]]  # status, reason, data


@dataclass
class HealthCheck:
    """One check's verdict: ``status`` is ok, warning or critical; ``reason`` one sentence."""

    name: str
    status: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Server:
    """The protected server's version, or why it could not be reached."""

    version: str | None = None
    major: int | None = None
    error: str | None = None


class Probe:
    """What several checks need, looked up at most once per run."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.target = target_connection()

    @property
    def naive_now(self) -> datetime:
        """``now`` as the catalog stores datetimes: naive UTC."""
        return self.now.astimezone(UTC).replace(tzinfo=None)

    @cached_property
    def server(self) -> Server:
        try:
            with psycopg.connect(self.target.conninfo, connect_timeout=CONNECT_TIMEOUT) as conn:
                number = conn.info.server_version
        except psycopg.Error as exc:
            return Server(error=self.target.redact_text(str(exc).strip()))
        return Server(version=f"{number // 10000}.{number % 10000}", major=number // 10000)

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=REDIS_TIMEOUT,
                              socket_connect_timeout=REDIS_TIMEOUT)

    @cached_property
    def redis_error(self) -> str | None:
        try:
            self.redis.ping()
        except RedisError as exc:
            return queue_unavailable_message(exc)
        return None

    @cached_property
    def backup_dir(self) -> Path:
        return Path(current_app.config["BACKUP_DIR"])

    @cached_property
    def backup_dir_problem(self) -> str | None:
        """Why backups cannot be written to BACKUP_DIR, or None."""
        try:
            LocalStorage(self.backup_dir)  # creates it (0700) when missing, as a backup would
            with tempfile.NamedTemporaryFile(dir=self.backup_dir, prefix=".health-"):
                pass
        except OSError as exc:
            return f"cannot create or write files in BACKUP_DIR {self.backup_dir}: {exc}"
        return None

    def close(self) -> None:
        if "redis" in self.__dict__:
            self.redis.close()


# ---- the checks --------------------------------------------------------------------------

def check_database(probe: Probe) -> Outcome:
    """The protected database answers, and which PostgreSQL it runs."""
    server, name = probe.server, probe.target.dbname
    if server.error:
        return "critical", _hint(
            f"cannot connect to the protected database {probe.target.redacted()}: "
            f"{server.error}", "check that PostgreSQL runs and that DATABASE_URL's host, "
            "port, user and password are right: psql \"$DATABASE_URL\" -c 'SELECT 1' must "
            "answer from this host (pg_hba.conf must let it in)"), {
            "database": name}
    return "ok", f"connected to {name} on PostgreSQL {server.version}", {
        "database": name, "serverVersion": server.version}


def check_client_tools(probe: Probe) -> Outcome:
    """pg_dump and pg_restore are on PATH and not older than the server."""
    paths = {tool: shutil.which(tool) for tool in CLIENT_TOOLS}
    missing = [tool for tool, path in paths.items() if path is None]
    install = _install_hint(probe.server.major)
    if missing:
        return "critical", _hint(f"{' and '.join(missing)} not found on PATH: backups and "
                                 "restores cannot run", install), {"missing": missing}
    try:
        # every path is set: a missing tool returned above
        versions = {tool: pg_dump_version(cast(str, path)) for tool, path in paths.items()}
    except BackupError as exc:
        return "critical", _hint(str(exc), install), {}
    data: dict[str, Any] = {key: {"path": paths[tool], "version": versions[tool]}
                            for tool, key in CLIENT_TOOLS.items()}
    server = probe.server
    data["serverVersion"] = server.version
    if server.major is None:
        return "warning", _hint("cannot compare the client tools with the server: the "
                                "protected database is unreachable", "see the database check"), data
    too_old = [f"{tool} {_major(version)} cannot {tool.removeprefix('pg_')} a PostgreSQL "
               f"{server.major} server" for tool, version in versions.items()
               if _major(version) < server.major]
    if too_old:
        return "critical", _hint("; ".join(too_old), install), data
    return "ok", (f"pg_dump {versions['pg_dump']} and pg_restore {versions['pg_restore']} "
                  f"work with PostgreSQL {server.version}"), data


def check_redis(probe: Probe) -> Outcome:
    """Redis, which holds the queues and the scheduler, answers a ping."""
    if probe.redis_error:
        return "critical", _hint(f"{probe.redis_error}. No backup, restore or schedule can run",
                                 "start Redis (systemctl start redis-server) or fix REDIS_URL: "
                                 "redis-cli -u \"$REDIS_URL\" ping must answer PONG"), {}
    return "ok", "Redis answers", {}


def check_workers(probe: Probe) -> Outcome:
    """Every queue has a live worker: registered, its pid alive here, its heartbeat fresh."""
    if probe.redis_error:
        return _redis_unknown("workers")
    live: dict[str, list[str]] = {}
    dead: dict[str, str] = {}
    for name in QUEUES:
        live[name] = []
        for worker in Worker.all(queue=Queue(name, connection=probe.redis)):
            reason = dead_worker_reason(worker.name, probe.redis)
            if reason:
                dead[worker.name] = reason
            else:
                live[name].append(worker.name)
    data = {"queues": live, "dead": dead}
    idle = [name for name in QUEUES if not live[name]]
    if idle:
        died = f" ({'; '.join(dead.values())})" if dead else ""
        return "critical", _hint(f"no worker listens on {', '.join(idle)}{died}: their "
                                 "jobs wait forever", WORKER_HINT), data
    count = len({worker for names in live.values() for worker in names})
    return "ok", f"every queue has a live worker ({_plural(count, 'worker')} in all)", data


def check_scheduler(probe: Probe) -> Outcome:
    """A scheduler has registered and neither stopped nor missed its heartbeat (its Redis
    key expires a few seconds after its polling interval)."""
    if probe.redis_error:
        return _redis_unknown("the scheduler")
    names = sorted(
        key.decode().removeprefix(SCHEDULER_PREFIX)
        for key in probe.redis.scan_iter(match=f"{SCHEDULER_PREFIX}*")
        if not probe.redis.hexists(key, "death")
    )
    if not names:
        return "critical", _hint("no scheduler is running: schedules and the daily "
                                 "retention clean-up will not fire",
                                 SCHEDULER_HINT), {"schedulers": []}
    return "ok", f"{_plural(len(names), 'scheduler')} running", {"schedulers": names}


def check_disk(probe: Probe) -> Outcome:
    """Free space where backups go, and how many days it lasts at the current growth."""
    if probe.backup_dir_problem:
        return "critical", _hint(f"{probe.backup_dir_problem} (directory permissions)",
                                 _directory_hint(probe.backup_dir)), {
            "path": str(probe.backup_dir)}
    config = current_app.config
    warning_at = config.get("DISK_WARNING_PERCENT", 80)
    critical_at = config.get("DISK_CRITICAL_PERCENT", 90)
    warning_days = config.get("DISK_WARNING_DAYS", 7)
    usage = shutil.disk_usage(probe.backup_dir)
    used_percent = 100 * usage.used / (usage.used + usage.free)  # as df shows it
    growth = _daily_growth(probe.naive_now)
    days_left = usage.free / growth if growth else None
    data = {"path": str(probe.backup_dir), "totalBytes": usage.total, "freeBytes": usage.free,
            "usedPercent": round(used_percent, 1), "growthBytesPerDay": round(growth),
            "daysLeft": None if days_left is None else round(days_left, 1),
            "warningPercent": warning_at, "criticalPercent": critical_at,
            "warningDays": warning_days}
    findings = [f"{used_percent:.0f}% used, {filesize(usage.free)} free"]
    status = "ok"
    if used_percent >= critical_at:
        status = "critical"
        findings.append(f"critical at {critical_at}%")
    elif used_percent >= warning_at:
        status = "warning"
        findings.append(f"warning at {warning_at}%")
    if days_left is not None:
        findings.append(f"{describe_days_left(days_left)} left at "
                        f"{filesize(round(growth))}/day")
        if days_left < warning_days:
            status = worst([status, "warning"])
    reason = f"{probe.backup_dir}: {', '.join(findings)}"
    if status != "ok":
        reason = _hint(reason, "delete old backups (Backups → Delete, or flask --app app "
                       "backup delete ID), keep them fewer days (Schedules → Edit → Keep for) "
                       "or give BACKUP_DIR more space; the thresholds are DISK_WARNING_PERCENT, "
                       "DISK_CRITICAL_PERCENT and DISK_WARNING_DAYS")
    return status, reason, data


def check_destinations(probe: Probe) -> Outcome:
    """Every place backups are stored accepts files (today: the local BACKUP_DIR)."""
    destinations = [_local_destination(probe)]
    status = worst(destination["status"] for destination in destinations)
    reason = "; ".join(destination["reason"] for destination in destinations)
    return status, reason, {"destinations": destinations}


def check_backup_age(probe: Probe) -> Outcome:
    """The newest good backup of each type is as recent as its schedules promise; before
    the first full backup, the first steps (``setup``)."""
    scheduled: dict[str, list[Schedule]] = {}
    for schedule in db.session.scalars(select(Schedule).where(Schedule.enabled)):
        scheduled.setdefault(schedule.type, []).append(schedule)
    ages = [_age_of(kind, scheduled.get(kind, []), probe.now) for kind in BACKUP_TYPES]
    status = worst(age.status for age in ages)
    reason = "; ".join(age.reason for age in ages)
    data: dict[str, Any] = {kind: age.data for kind, age in zip(BACKUP_TYPES, ages, strict=True)}
    if any(age.status == "setup" for age in ages):
        data["firstSteps"] = _first_steps(bool(scheduled.get("full")))
    fixes = list(dict.fromkeys(age.fix for age in ages if age.fix))
    if status != "ok":
        reason = _hint(reason, "; ".join(fixes))
    return status, reason, data


def check_failed_jobs(probe: Probe) -> Outcome:
    """Backups and restores that failed in the last 24 h, and RQ's failed jobs."""
    since = probe.naive_now - FAILURE_WINDOW
    data: dict[str, Any] = {"backups": _failed_since(Backup, since),
                            "restores": _failed_since(Restore, since)}
    failures = [_plural(data[kind], kind[:-1]) for kind in ("backups", "restores") if data[kind]]
    if probe.redis_error:
        checked = " (RQ's failed jobs not checked: Redis is down)"
    else:
        checked = ""
        data["rqFailed"] = {name: _rq_failed_since(name, probe.redis, probe.now - FAILURE_WINDOW)
                            for name in QUEUES}
        if rq_failed := {name: count for name, count in data["rqFailed"].items() if count}:
            per_queue = ", ".join(f"{name}: {count}" for name, count in rq_failed.items())
            failures.append(f"{_plural(sum(rq_failed.values()), 'RQ job')} ({per_queue})")
    if not failures:
        return "ok", f"nothing failed in the last 24 h{checked}", data
    return "warning", _hint(f"failed in the last 24 h: {', '.join(failures)}{checked}",
                            "read each one's error and fix what it names: the failed "
                            "backup or restore in the dashboard (GET /api/system/backup?status="
                            "failed), RQ's failed jobs with rq info --url \"$REDIS_URL\"; they "
                            "stop counting after 24 h"), data


def check_change_capture(probe: Probe) -> Outcome:
    """Change capture can run, and no replication slot keeps too much WAL
    (services/capture_health.py)."""
    if probe.server.error:
        return "warning", _hint("cannot check change capture: the protected database is "
                                "unreachable", "see the database check"), {}
    found = capture_health.assess()
    if not found.findings:
        return "ok", found.summary, found.data
    status = worst(finding.status for finding in found.findings)
    return status, _hint(" ".join(finding.problem for finding in found.findings),
                         " ".join(finding.fix for finding in found.findings)), found.data


CHECKS: dict[str, Callable[[Probe], Outcome]] = {
    "database": check_database,
    "client-tools": check_client_tools,
    "redis": check_redis,
    "workers": check_workers,
    "scheduler": check_scheduler,
    "disk": check_disk,
    "destinations": check_destinations,
    "backup-age": check_backup_age,
    "failed-jobs": check_failed_jobs,
    "change-capture": check_change_capture,
}


# ---- running them ------------------------------------------------------------------------

def run_checks(now: datetime | None = None) -> list[HealthCheck]:
    """Run every check (in an app context); ``now`` is an aware datetime, default now."""
    probe = Probe(now or datetime.now(UTC))
    try:
        return [_run(name, check, probe) for name, check in CHECKS.items()]
    finally:
        probe.close()


def run_checks_or_report(now: datetime | None = None) -> list[HealthCheck]:
    """run_checks(); should they fail as a whole (each check reports its own failure), one
    critical check that says so, with nothing of theirs left pending in the session."""
    try:
        return run_checks(now)
    except Exception as exc:
        db.session.rollback()
        current_app.logger.exception("health checks failed")
        return [HealthCheck("health", "critical", (
            f"the health checks could not run ({type(exc).__name__}). Troubleshooting: "
            "see the app log for the traceback"))]


def _run(name: str, check: Callable[[Probe], Outcome], probe: Probe) -> HealthCheck:
    try:
        return HealthCheck(name, *check(probe))
    except Exception as exc:
        db.session.rollback()
        log.exception("health check %s failed", name)
        error = probe.target.redact_text(f"{type(exc).__name__}: {exc}")
        return HealthCheck(name, "critical", _hint(
            f"the {name} check failed: {error}", "see the app log for the traceback; a "
            "malformed setting (e.g. DISK_WARNING_PERCENT) is a common cause"))


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=STATUSES.index, default="ok")


def overall(checks: Iterable[HealthCheck]) -> str:
    """The worst status of all checks: ``setup`` when a first run is all there is."""
    return worst(check.status for check in checks)


def to_dict(checks: list[HealthCheck], now: datetime) -> dict[str, Any]:
    return {"status": overall(checks), "checkedAt": iso(now),
            "checks": [asdict(check) for check in checks]}


# ---- helpers -----------------------------------------------------------------------------

def _hint(problem: str, troubleshooting: str) -> str:
    """One reason: the problem (whitespace folded), then what to do about it."""
    problem = " ".join(problem.split())
    end = "" if problem.endswith((".", "?", "!")) else "."
    return f"{problem}{end} Troubleshooting: {troubleshooting}"


def _redis_unknown(what: str) -> Outcome:
    return "critical", _hint(f"cannot check {what}: Redis is unreachable",
                             "see the redis check"), {}


def _install_hint(major: int | None) -> str:
    version = f"{major} or newer" if major else "of the server's major version or newer"
    package = f"postgresql-client-{major}" if major else "postgresql-client"
    return (f"install the PostgreSQL client tools {version} (Debian, Ubuntu: apt-get install "
            f"{package}) and put their bin directory first on PATH for the app and the workers")


def _directory_hint(path: Path) -> str:
    return (f"create it for the user that runs the app and the workers: install -d -m 0700 "
            f"-o {getpass.getuser()} {path} (or point BACKUP_DIR elsewhere)")


def _local_destination(probe: Probe) -> dict[str, Any]:
    problem = probe.backup_dir_problem
    return {
        "name": "local", "location": str(probe.backup_dir),
        "status": "critical" if problem else "ok",
        "reason": _hint(problem, _directory_hint(probe.backup_dir)) if problem
        else f"{probe.backup_dir} is writable",
    }


def _daily_growth(now: datetime) -> float:
    """Bytes per day of the backups completed in the last week."""
    total = db.session.scalar(select(func.coalesce(func.sum(Backup.size), 0)).where(
        Backup.status == "completed", Backup.finished_at >= now - GROWTH_WINDOW))
    assert total is not None  # COALESCE(SUM(...), 0) is never NULL
    return total / GROWTH_WINDOW.days


@dataclass(frozen=True)
class Age:
    """The backup-age verdict for one backup type, and the fix for it (None when ok)."""

    status: str
    reason: str
    data: dict[str, Any]
    fix: str | None = None


def _age_of(kind: str, schedules: list[Schedule], now: datetime) -> Age:
    """How late the newest good backup of ``kind`` is, and which newer ones lost their files
    (a warning at least)."""
    newest, lost = _newest_good(kind)
    age = _lateness(kind, newest, schedules, now)
    if not lost:
        return age
    age.data["missing"] = [backup.id for backup in lost]
    problems = "; ".join(artifact_presence.problem(backup) for backup in lost)
    newer = _plural(len(lost), f"newer {kind} backup")
    fix = "; ".join(filter(None, (age.fix, MISSING_FIX)))
    return Age(worst([age.status, "warning"]), f"{age.reason}; {newer} missing ({problems})",
               age.data, fix)


def _newest_good(kind: str) -> tuple[Backup | None, list[Backup]]:
    """The newest completed, not corrupted backup of ``kind`` whose files are in place, and
    the newer ones that are ``missing``, newest first."""
    completed = (select(Backup).where(Backup.type == kind, Backup.status == "completed",
                                      Backup.finished_at.is_not(None))
                 .order_by(Backup.finished_at.desc()))
    good = completed.where(Backup.verification.not_in(UNRESTORABLE)).limit(1)
    while (newest := db.session.scalars(good).first()) and artifact_presence.check_files(
            [newest]):
        pass  # its files are gone: it is missing now, so look at the next one
    lost = completed.where(Backup.verification == artifact_presence.MISSING)
    if newest is not None:
        lost = lost.where(Backup.finished_at > newest.finished_at)
    return newest, list(db.session.scalars(lost))


def _lateness(kind: str, newest: Backup | None, schedules: list[Schedule],
              now: datetime) -> Age:
    """How late ``newest`` is, for the schedules of ``kind`` or without one."""
    age: timedelta | None = None
    if newest:
        assert newest.finished_at is not None  # _newest_good picks finished backups only
        age = now - as_utc(newest.finished_at)
    data: dict[str, Any] = {"backupId": newest.id if newest else None,
                            "ageSeconds": None if age is None else round(age.total_seconds())}
    first_run = newest is None and kind == "full" and _never_finished(kind)
    if schedules:
        interval = min(_interval(schedule, now) for schedule in schedules)
        data["intervalSeconds"] = round(interval.total_seconds())
        since = age if age is not None else now - min(
            as_utc(schedule.created_at) for schedule in schedules)
        status, reason = _against_interval(kind, age is not None, since, interval)
        if status == "ok" and first_run:
            return Age("setup", reason, data, f"take the first backup now ({NEW_BACKUP}), "
                       "or wait for the schedule's first run")
        return Age(status, reason, data, None if status == "ok" else LATE_FIX)
    if age is not None:
        late = kind == "full" and age > UNSCHEDULED_MAX_AGE
        return Age("warning" if late else "ok",
                   f"the newest good {kind} backup is {_duration(age)} old"
                   + (", and no full backup is scheduled" if late else ""), data,
                   f"schedule it: {NEW_SCHEDULE}; or take one now: {NEW_BACKUP}" if late
                   else None)
    if first_run:
        return Age("setup", _first_backup_state(), data,
                   f"take the first backup: {NEW_BACKUP}; then schedule it: {NEW_SCHEDULE}")
    if kind == "full":
        return Age("critical", "there is no good full backup at all", data, NO_GOOD_FULL_FIX)
    return Age("ok", f"no {kind} backup (none scheduled)", data)


def _never_finished(kind: str) -> bool:
    """No backup of ``kind`` has ever completed or failed: a first run (queued or running
    ones are on their way)."""
    return db.session.scalar(select(Backup.id).where(
        Backup.type == kind, Backup.status.not_in(ACTIVE_STATUSES)).limit(1)) is None


def _first_full_status() -> str | None:
    """``queued`` or ``running`` while the first full backup is on its way, else None."""
    return db.session.scalar(select(Backup.status).where(
        Backup.type == "full", Backup.status.in_(ACTIVE_STATUSES)).limit(1))


def _first_backup_state() -> str:
    active = _first_full_status()
    if active is None:
        return "no full backup yet: this is a new install"
    return f"no full backup yet: the first one is {active}"


def first_steps() -> dict[str, str]:
    """The first run's steps as the Backups section shows them before any backup."""
    scheduled = db.session.scalar(select(Schedule.id).where(
        Schedule.enabled, Schedule.type == "full").limit(1)) is not None
    return _first_steps(scheduled)


def _first_steps(scheduled: bool) -> dict[str, str]:
    """The first run's two steps, each ``todo``, ``running`` or ``done``: take the first
    full backup, schedule full backups."""
    return {"backup": "running" if _first_full_status() else "todo",
            "schedule": "done" if scheduled else "todo"}


def _against_interval(kind: str, exists: bool, since: timedelta,
                      interval: timedelta) -> tuple[str, str]:
    what = (f"the newest good {kind} backup is {_duration(since)} old" if exists
            else f"no good {kind} backup yet, {_duration(since)} after its schedule was made")
    every = f"scheduled every {_duration(interval)}"
    if since > CRITICAL_FACTOR * interval:
        return "critical", f"{what}, over {CRITICAL_FACTOR} times the interval ({every})"
    if since > WARNING_FACTOR * interval:
        return "warning", f"{what}, over {WARNING_FACTOR} times the interval ({every})"
    return "ok", f"{what} ({every})"


def _interval(schedule: Schedule, now: datetime) -> timedelta:
    """The longest gap between the schedule's next runs (weekday-only crons skip weekends,
    months differ in length)."""
    when = timing(schedule)
    runs = [when.next_run(now)]
    for _ in range(RUNS_SAMPLED):
        runs.append(when.next_run(runs[-1]))
    return max(later - earlier for earlier, later in pairwise(runs))


def _failed_since(model: type[Backup] | type[Restore], since: datetime) -> int:
    count = db.session.scalar(select(func.count()).select_from(model).where(
        model.status == "failed", func.coalesce(model.finished_at, model.created_at) >= since))
    assert count is not None  # COUNT always returns a row
    return count


def _rq_failed_since(queue_name: str, connection: Redis, since: datetime) -> int:
    registry = FailedJobRegistry(queue=Queue(queue_name, connection=connection))
    ids = registry.get_job_ids(0, FAILED_JOBS_SCANNED - 1, desc=True)
    jobs = Job.fetch_many(ids, connection=connection)
    return sum(1 for job in jobs if job and job.ended_at and as_utc(job.ended_at) >= since)


def _major(version: str) -> int:
    match = re.match(r"\d+", version)
    assert match is not None  # a PostgreSQL version starts with its major, e.g. 15.19
    return int(match[0])


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
