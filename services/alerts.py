"""Alerts: the problems that exist now, each notified once when it starts, at most daily
while it lasts, and once when it clears.

A problem has a stable key (``no-recent-backup:schedule:3``, ``backup-failed:<id>``,
``health:disk``). :func:`evaluate` diffs the problems of the moment with the open
``Alert`` rows: a new key opens an alert ("fired"), an open alert whose key is gone is
closed ("cleared"), and one still present and not notified for a day is reminded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import func, or_, select

from services import destination_health, destinations, health, notifications
from services.extensions import db
from services.models import UNRESTORABLE, Alert, Backup, Restore, Schedule
from services.schedules import as_utc, now_utc, timing

log = logging.getLogger(__name__)

EVENT_WINDOW = timedelta(hours=24)  # a failure or a corruption alerts for a day
REMIND_EVERY = timedelta(hours=24)
LATE_FACTOR = 1.5  # times a schedule's interval without a good backup
HEALTH_CHECKS = ("disk", "workers", "scheduler", "change-capture")
SEVERITIES = ("warning", "critical")  # mildest first
RECENTLY_CLEARED = timedelta(days=7)  # how long the API lists a cleared alert


@dataclass(frozen=True)
class Problem:
    key: str
    severity: str  # warning, critical
    message: str


class Event(NamedTuple):
    kind: str  # fired, reminder, cleared
    alert: Alert


# ---- the problems of the moment -------------------------------------------------------

def desired_problems(now: datetime | None = None) -> dict[str, Problem]:
    """Every problem that exists at ``now`` (default: now), by key."""
    now = as_utc(now) if now else now_utc()
    found = [*_late_schedules(now), *_failed_backups(now), *_failed_restores(now),
             *_corrupted_backups(now), *_health_problems(now), *_failing_destinations()]
    return {problem.key: problem for problem in found}


def _late_schedules(now: datetime) -> Iterator[Problem]:
    """Enabled schedules without a good backup (completed, restorable) for too long."""
    for schedule in db.session.scalars(select(Schedule).where(Schedule.enabled)):
        newest = db.session.scalar(select(func.max(Backup.created_at)).where(
            Backup.schedule_id == schedule.id, Backup.status == "completed",
            Backup.verification.not_in(UNRESTORABLE)))
        since = as_utc(max(filter(None, (newest, schedule.created_at))))
        due, late_at = _deadline(schedule, since)
        if now >= late_at:
            last = f"none since {newest:%Y-%m-%d %H:%M} UTC" if newest else "none yet"
            yield Problem(f"no-recent-backup:schedule:{schedule.id}", "critical",
                          f"no recent backup for schedule {schedule.name}: {last}, "
                          f"one was due {due:%Y-%m-%d %H:%M} UTC")


def _deadline(schedule: Schedule, since: datetime) -> tuple[datetime, datetime]:
    """The first run due after ``since``, and when it counts as missing: half the gap to
    the run after it later, so 1.5 intervals after ``since`` on a regular schedule (and a
    weekday-only schedule does not alert over the weekend)."""
    when = timing(schedule)
    due = when.next_run(since)
    return due, due + (when.next_run(due) - due) * (LATE_FACTOR - 1)


def _failed_backups(now: datetime) -> Iterator[Problem]:
    finished = func.coalesce(Backup.finished_at, Backup.created_at)
    for backup in _recent(Backup, Backup.status == "failed", finished, now):
        yield Problem(f"backup-failed:{backup.id}", "critical",
                      f"{backup.type} backup {backup.id} of {backup.database} failed: "
                      f"{_first_line(backup.error)}")


def _failed_restores(now: datetime) -> Iterator[Problem]:
    finished = func.coalesce(Restore.finished_at, Restore.created_at)
    for restore in _recent(Restore, Restore.status == "failed", finished, now):
        yield Problem(f"restore-failed:{restore.id}", "critical",
                      f"restore {restore.id} of backup {restore.backup_id} into "
                      f"{restore.target_database} failed: {_first_line(restore.error)}")


def _corrupted_backups(now: datetime) -> Iterator[Problem]:
    for backup in _recent(Backup, Backup.verification == "corrupted", Backup.verified_at, now):
        checks = (backup.verification_result or {}).get("checks", [])
        failed = ", ".join(check["name"] for check in checks if not check.get("ok"))
        yield Problem(f"backup-invalid:{backup.id}", "critical",
                      f"backup {backup.id} is corrupted: verification failed "
                      f"({failed or 'see its verification result'})")


def _failing_destinations() -> Iterator[Problem]:
    """Destinations whose last COPY_FAILURE_ALERT_AFTER copies or more all failed; the
    alert clears once one stores a copy again."""
    threshold = current_app.config["COPY_FAILURE_ALERT_AFTER"]
    names = [destination.name for destination in destinations.list_destinations()]
    for name, state in destination_health.health_of(names).items():
        if state.consecutive_failures >= threshold:
            yield Problem(f"destination-failing:{name}", "critical",
                          f"copies to destination {name} keep failing "
                          f"({state.consecutive_failures} in a row): "
                          f"{_first_line(state.last_error)}")


def _health_problems(now: datetime) -> list[Problem]:
    """Disk space, workers, the scheduler and change capture (replication slots keeping
    too much WAL, capture that cannot run), as the health checks see them; a first run's
    ``setup`` is no problem."""
    return [Problem(f"health:{check.name}", check.status, check.reason)
            for check in health.run_checks(now)
            if check.name in HEALTH_CHECKS and check.status in SEVERITIES]


def _recent(model: Any, condition: Any, when: Any, now: datetime) -> list[Any]:
    """Rows matching ``condition`` whose ``when`` lies in the last EVENT_WINDOW."""
    stamp = _naive(now)
    return list(db.session.scalars(select(model).where(
        condition, when > stamp - EVENT_WINDOW, when <= stamp)))


def _first_line(error: str | None) -> str:
    lines = (error or "").strip().splitlines()
    return lines[0][:300] if lines else "no error recorded"


# ---- diffing with the open alerts -----------------------------------------------------

def evaluate(now: datetime | None = None) -> list[Event]:
    """Open, remind and clear alerts to match the problems at ``now`` (default: now).
    Each event gets a delivery per enabled channel, committed with the alerts and then
    queued."""
    now = as_utc(now) if now else now_utc()
    stamp = _naive(now)
    problems = desired_problems(now)
    current = {alert.key: alert for alert in open_alerts()}
    refreshed = (_refresh(alert, problems[key], stamp)
                 for key, alert in current.items() if key in problems)
    events = [
        *_fire([problem for key, problem in problems.items() if key not in current], stamp),
        *_clear([alert for key, alert in current.items() if key not in problems], stamp),
        *(event for event in refreshed if event),
    ]
    for event in events:
        event.alert.last_notified_at = stamp
        log.info("alert %s: %s (%s)", event.kind, event.alert.key, event.alert.severity)
    deliveries = notifications.add_deliveries(events)
    db.session.commit()
    notifications.enqueue(deliveries)
    return events


def _fire(problems: list[Problem], stamp: datetime) -> list[Event]:
    alerts = [Alert(key=problem.key, severity=problem.severity, message=problem.message,
                    started_at=stamp) for problem in problems]
    db.session.add_all(alerts)
    return [Event("fired", alert) for alert in alerts]


def _clear(alerts: list[Alert], stamp: datetime) -> list[Event]:
    for alert in alerts:
        alert.cleared_at = stamp
    return [Event("cleared", alert) for alert in alerts]


def _refresh(alert: Alert, problem: Problem, stamp: datetime) -> Event | None:
    """Keep an open alert's message current. Its severity only rises, and a rise is
    notified like a new problem; a day without a notification brings a reminder."""
    alert.message = problem.message
    if SEVERITIES.index(problem.severity) > SEVERITIES.index(alert.severity):
        alert.severity = problem.severity
        return Event("fired", alert)
    if alert.last_notified_at is None or stamp - alert.last_notified_at >= REMIND_EVERY:
        return Event("reminder", alert)
    return None


def open_alerts() -> list[Alert]:
    return list(db.session.scalars(select(Alert).where(Alert.cleared_at.is_(None))))


def recent_alerts(now: datetime | None = None) -> list[Alert]:
    """Open alerts, then those cleared in the last RECENTLY_CLEARED, newest first."""
    since = _naive(as_utc(now) if now else now_utc()) - RECENTLY_CLEARED
    return list(db.session.scalars(
        select(Alert).where(or_(Alert.cleared_at.is_(None), Alert.cleared_at >= since))
        .order_by(Alert.cleared_at.is_not(None), Alert.started_at.desc(), Alert.id.desc())))


def _naive(value: datetime) -> datetime:
    """As the catalog stores datetimes: naive UTC."""
    return as_utc(value).replace(tzinfo=None)
