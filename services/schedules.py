"""Schedules: the catalog is the source of truth, rq-scheduler only holds the next firing.

Each enabled schedule has exactly one registration in rq-scheduler: a job for its next
slot, with the id ``schedule-<id>-<slot>``. :func:`sync_schedules` (run by the scheduler
process at start-up and on every pass) re-creates missing registrations, moves edited
ones and removes those of deleted or disabled schedules, so a flushed Redis or an edited
time never leaves a ghost or a missing run. A slot fires at most once: a (schedule, slot)
row in ``schedule_runs`` is unique. A slot missed while everything was down is fired
once, at start-up; the next slot is computed from then on, so missed slots never pile up.
A registration that goes takes its job with it, and one that has run expires like every
job (RESULT_TTL, FAILURE_TTL): nothing of a schedule stays in Redis for good.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq_scheduler import Scheduler
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jobs.queues import (
    BACKUP_QUEUE,
    FAILURE_TTL,
    NOTIFY_QUEUE,
    RESULT_TTL,
    queue_unavailable_message,
    redis_connection,
)
from services import activity
from services.backups import admitted, create_backup
from services.destinations import resolve as resolve_destinations
from services.errors import CatalogError
from services.extensions import db
from services.json_shapes import iso
from services.models import ACTIVE_STATUSES, Backup, Schedule, ScheduleRun, utcnow
from services.schedule_timing import Timing, TimingError

FIELDS = {  # API name -> column
    "name": "name", "type": "type", "frequency": "frequency", "time": "time",
    "dayOfWeek": "day_of_week", "dayOfMonth": "day_of_month", "cron": "cron",
    "timezone": "timezone", "retention": "retention_days", "keepAtLeast": "keep_at_least",
    "verify": "verify", "enabled": "enabled", "destinations": "destinations",
}
API_NAMES = {column: api for api, column in FIELDS.items()}
PER_FREQUENCY = {"weekly": "day_of_week", "monthly": "day_of_month", "cron": "cron"}
JOB_PREFIX = "schedule-"
CLEANUP_PREFIX = "retention-cleanup-"
CLEANUP_TIMING = Timing(frequency="daily", time="03:30")  # UTC
ALERTS_JOB_ID = "alerts-evaluate"
ALERTS_INTERVAL = 60  # seconds
ORPHAN_AGE = timedelta(minutes=1)

log = logging.getLogger(__name__)


def timing(schedule: Schedule) -> Timing:
    return Timing(
        frequency=schedule.frequency, time=schedule.time, day_of_week=schedule.day_of_week,
        day_of_month=schedule.day_of_month, cron=schedule.cron, timezone=schedule.timezone,
    )


def as_utc(value: datetime) -> datetime:
    """Catalog datetimes are naive UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---- create, edit, delete -------------------------------------------------------------

def create_schedule(fields: dict[str, Any]) -> Schedule:
    defaults = {"time": None if fields.get("frequency") == "cron" else "02:00",
                "timezone": "UTC", "type": "full", "retention": 7, "keepAtLeast": 1,
                "verify": "integrity", "enabled": True}
    schedule = Schedule()
    _apply_or_roll_back(schedule, {**defaults, **fields})
    _save(schedule)
    activity.record("schedule.create", schedule.name, detail=timing(schedule).describe())
    return schedule


def update_schedule(schedule_id: int, fields: dict[str, Any]) -> Schedule:
    schedule = get_schedule(schedule_id)
    if "frequency" in fields and fields["frequency"] != schedule.frequency:
        for column in PER_FREQUENCY.values():  # stale day/cron fields of the old frequency
            setattr(schedule, column, None)
        if fields["frequency"] == "cron":
            schedule.time = None
    _apply_or_roll_back(schedule, fields)
    _save(schedule)
    activity.record("schedule.update", schedule.name, detail=", ".join(sorted(fields)))
    return schedule


def _apply(schedule: Schedule, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(schedule, FIELDS[name], value)
    if schedule.destinations:
        resolve_destinations(schedule.destinations)  # each name exists, none twice
    try:
        when = timing(schedule)  # validates, enabled or not
        schedule.next_run_at = (
            when.next_run(now_utc()).replace(tzinfo=None) if schedule.enabled else None
        )
    except TimingError as exc:
        api_name = API_NAMES.get(exc.field, exc.field)
        message = str(exc).replace(exc.field, api_name)
        raise CatalogError(message, code="invalid_schedule") from None


def _apply_or_roll_back(schedule: Schedule, fields: dict[str, Any]) -> None:
    """_apply; a refusal leaves nothing pending (an edited row has changed already)."""
    try:
        _apply(schedule, fields)
    except CatalogError:
        db.session.rollback()
        raise


def _save(schedule: Schedule) -> None:
    name = schedule.name  # as asked for: the rollback expires an edited row's
    db.session.add(schedule)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        taken = db.session.scalars(select(Schedule).where(Schedule.name == name)).first()
        db.session.rollback()  # the check's read: nothing stays open
        if taken:
            raise CatalogError(f"a schedule named {name!r} exists already",
                               status=409, code="schedule_exists") from None
        raise
    _try_sync()


def delete_schedule(schedule_id: int) -> None:
    """Its backups stay (kept until deleted by hand); its registration goes."""
    schedule = get_schedule(schedule_id)
    db.session.delete(schedule)
    db.session.commit()
    activity.record("schedule.delete", schedule.name)
    _try_sync()


def _try_sync() -> None:
    """Register at once when Redis is up; the scheduler's next pass does it otherwise."""
    try:
        sync_schedules()
    except RedisError as exc:
        log.warning("%s; the scheduler will register schedules later",
                            queue_unavailable_message(exc))


def get_schedule(schedule_id: int) -> Schedule:
    schedule = db.session.get(Schedule, schedule_id)
    if schedule is None:
        raise CatalogError(f"no schedule with id {schedule_id}", status=404, code="not_found")
    return schedule


def find_schedule(schedule_id: int) -> Schedule | None:
    """The schedule, or None when there is none (no 404, unlike get_schedule)."""
    return db.session.get(Schedule, schedule_id)


def list_schedules() -> list[Schedule]:
    return list(db.session.scalars(select(Schedule).order_by(Schedule.name)))


@dataclass(frozen=True)
class RecentRuns:
    """Per schedule id: its latest run, its latest run that started a backup, and
    whether one of its backups is queued or running."""

    latest: dict[int, ScheduleRun] = field(default_factory=dict)
    started: dict[int, ScheduleRun] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)


def recent_runs(schedule_ids: Collection[int]) -> RecentRuns:
    """What the dashboard's schedule cards show of the schedules' runs."""
    summary = RecentRuns()
    if not schedule_ids:
        return summary
    runs = db.session.scalars(
        select(ScheduleRun).where(ScheduleRun.schedule_id.in_(schedule_ids))
        .order_by(ScheduleRun.fired_at.desc(), ScheduleRun.id.desc()))
    for run in runs:
        summary.latest.setdefault(run.schedule_id, run)
        if run.backup_id is not None:
            summary.started.setdefault(run.schedule_id, run)
    summary.active.update(db.session.scalars(select(Backup.schedule_id).where(
        Backup.schedule_id.in_(schedule_ids), Backup.status.in_(ACTIVE_STATUSES))))
    return summary


# ---- firing -------------------------------------------------------------------------

def fire(schedule_id: int, slot: str, manual: bool = False) -> ScheduleRun | None:
    """Start the backup for one slot, once; skip it while the previous run is going.

    The admission lock is taken before the run's row is written, in the order every
    request takes them (lock, then catalog), so a slot and a request never wait on
    each other."""
    with admitted("the slot did not fire"):
        return _fire(schedule_id, slot, manual)


def _fire(schedule_id: int, slot: str, manual: bool) -> ScheduleRun | None:
    schedule = db.session.get(Schedule, schedule_id)
    if schedule is None or not (schedule.enabled or manual):
        return None
    run = ScheduleRun(schedule_id=schedule.id, slot=slot, outcome="started")
    db.session.add(run)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None  # another scheduler or a duplicate registration fired this slot
    busy = _active_backup(schedule)
    if busy is not None:
        run.outcome = "skipped"
        run.reason = f"the previous run ({busy.id}) is still {busy.status}"
        schedule.last_status = "skipped"
    else:
        try:
            backup = create_backup(schedule.type, origin="schedule",
                                   schedule_id=schedule.id, destinations=schedule.destinations)
        except CatalogError as exc:
            if exc.code != "restore_running":
                db.session.rollback()  # the run's row goes too: nothing of it is kept
                raise
            run.outcome, run.reason = "skipped", exc.message
            schedule.last_status = "skipped"
        else:
            run.backup_id = backup.id
            schedule.last_status = backup.status
    schedule.last_run_at = utcnow()
    if not manual:
        schedule.next_run_at = timing(schedule).next_run(
            max(now_utc(), as_utc(datetime.fromisoformat(slot)))).replace(tzinfo=None)
    db.session.commit()
    return run


def run_now(schedule_id: int) -> ScheduleRun:
    schedule = get_schedule(schedule_id)
    run = fire(schedule.id, f"manual-{now_utc().isoformat(timespec='milliseconds')}",
               manual=True)
    if run is None:  # two clicks in the same millisecond
        raise CatalogError("this schedule was just started", status=409, code="already_started")
    activity.record("schedule.run", schedule.name, detail=run.reason or run.backup_id)
    return run


def _active_backup(schedule: Schedule) -> Backup | None:
    return db.session.scalars(select(Backup).where(
        Backup.schedule_id == schedule.id, Backup.status.in_(ACTIVE_STATUSES))).first()


# ---- registration in rq-scheduler ---------------------------------------------------

def scheduler() -> Scheduler:
    return Scheduler(queue_name=BACKUP_QUEUE, connection=redis_connection())


def slot_job_id(schedule: Schedule, slot: datetime) -> str:
    return f"{JOB_PREFIX}{schedule.id}-{as_utc(slot):%Y%m%dT%H%M%SZ}"


def sync_schedules() -> dict[str, list[str]]:
    """Make rq-scheduler hold exactly one registration per enabled schedule."""
    sched = scheduler()
    all_registered = _registrations(sched)
    registered = {job_id for job_id in all_registered if job_id.startswith(JOB_PREFIX)}
    wanted, added = set(), []
    for schedule in db.session.scalars(select(Schedule).where(Schedule.enabled)):
        try:
            _skip_fired_slot(schedule)
        except TimingError as exc:  # one bad row must not stop every other schedule
            log.error("schedule %s cannot be registered: %s", schedule.id, exc)
            continue
        assert schedule.next_run_at is not None  # _skip_fired_slot set it
        job_id = slot_job_id(schedule, schedule.next_run_at)
        wanted.add(job_id)
        if job_id not in registered and not _pending(job_id):
            _register(sched, schedule, job_id)
            added.append(job_id)
    removed = sorted(registered - wanted)
    for job_id in removed:
        _unregister(sched, all_registered[job_id])
    db.session.commit()
    if not any(job_id.startswith(CLEANUP_PREFIX) for job_id in all_registered):
        added.append(_register_cleanup(sched))
    if ALERTS_JOB_ID not in all_registered:
        added.append(_register_alerts(sched))
    return {"added": added, "removed": removed}


def _registrations(sched: Scheduler) -> dict[str, Job]:
    """rq-scheduler's registrations by id. The app's that lack its TTLs (an older version
    made them) are dropped, so that sync_schedules makes them again."""
    registrations = {}
    for job in sched.get_jobs():
        if (job.id.startswith((JOB_PREFIX, CLEANUP_PREFIX, ALERTS_JOB_ID))
                and (job.result_ttl, job.failure_ttl) != (RESULT_TTL, FAILURE_TTL)):
            _unregister(sched, job)
        else:
            registrations[job.id] = job
    return registrations


def _register_cleanup(sched: Scheduler) -> str:
    """The daily retention clean-up, registered one day at a time like a schedule."""
    slot = CLEANUP_TIMING.next_run(now_utc())
    job_id = f"{CLEANUP_PREFIX}{slot:%Y%m%dT%H%M%SZ}"
    _expiring(sched.enqueue_at(
        slot.replace(tzinfo=None), "jobs.schedule.run_cleanup", job_id=job_id,
        job_description="daily retention clean-up", job_result_ttl=RESULT_TTL,
        queue_name=BACKUP_QUEUE))
    return job_id


def _register_alerts(sched: Scheduler) -> str:
    """Alert evaluation every minute: one repeating registration, re-created if lost."""
    _expiring(sched.schedule(now_utc().replace(tzinfo=None), "jobs.alerts.evaluate_alerts",
                             interval=ALERTS_INTERVAL, id=ALERTS_JOB_ID, result_ttl=RESULT_TTL,
                             description="evaluate alerts", queue_name=NOTIFY_QUEUE))
    return ALERTS_JOB_ID


def drop_orphaned_registrations() -> list[str]:
    """Delete the jobs of schedule registrations that rq-scheduler no longer holds, which
    versions before this one left behind when a schedule was edited, disabled or deleted.
    A registration younger than ORPHAN_AGE may be one being made (saved, not yet listed)."""
    connection = redis_connection()
    listed = scheduler()
    pattern = f"{Job.redis_job_namespace_prefix}{JOB_PREFIX}*"
    keys = [key.decode() for key in connection.scan_iter(match=pattern, count=1000)]
    ids = [key.removeprefix(Job.redis_job_namespace_prefix) for key in keys]
    dropped = []
    for job in Job.fetch_many(ids, connection=connection):
        if (job is not None and job.get_status(refresh=False) == JobStatus.SCHEDULED
                and job.id not in listed and now_utc() - as_utc(job.created_at) > ORPHAN_AGE):
            job.delete()
            dropped.append(job.id)
    return dropped


def _skip_fired_slot(schedule: Schedule) -> None:
    """A slot that already has a run (the scheduler died before moving on) is done."""
    if schedule.next_run_at is None:
        schedule.next_run_at = timing(schedule).next_run(now_utc()).replace(tzinfo=None)
    fired = db.session.scalars(select(ScheduleRun).where(
        ScheduleRun.schedule_id == schedule.id,
        ScheduleRun.slot == as_utc(schedule.next_run_at).isoformat())).first()
    if fired is not None:
        schedule.next_run_at = timing(schedule).next_run(
            max(now_utc(), as_utc(schedule.next_run_at))).replace(tzinfo=None)


def _pending(job_id: str) -> bool:
    """Moved to the queue or running: registered in all but name."""
    try:
        status = Job.fetch(job_id, connection=redis_connection()).get_status()
    except NoSuchJobError:
        return False
    return status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.FINISHED)


def _register(sched: Scheduler, schedule: Schedule, job_id: str) -> None:
    assert schedule.next_run_at is not None  # sync_schedules registers a set slot
    slot = as_utc(schedule.next_run_at)
    _expiring(sched.enqueue_at(
        max(slot, now_utc()).replace(tzinfo=None),  # a missed slot fires once, now
        "jobs.schedule.fire_schedule", schedule.id, slot.isoformat(),
        job_id=job_id, job_description=f"schedule {schedule.name!r}: {schedule.type} "
        f"backup due {slot:%Y-%m-%d %H:%M} UTC", job_result_ttl=RESULT_TTL,
        queue_name=BACKUP_QUEUE,
    ))


def _expiring(job: Job) -> None:
    """Give a registration the failure TTL that rq-scheduler cannot pass on (its result TTL
    is passed as it is registered): RQ forgets it FAILURE_TTL after it fails."""
    job.failure_ttl = FAILURE_TTL
    job.save()


def _unregister(sched: Scheduler, job: Job) -> None:
    """Take a registration out of rq-scheduler and delete its job: rq-scheduler's cancel
    only takes it off its list, which would leave the job's hash (status ``scheduled``, no
    expiry) in Redis for good. One that a scheduler has just moved to its queue is a job
    like any other now: it runs, and expires once it ends."""
    sched.cancel(job)
    if _status(job) == JobStatus.SCHEDULED:
        job.delete()


def _status(job: Job) -> JobStatus | None:
    try:
        return job.get_status()
    except InvalidJobOperation:  # its hash is gone already
        return None


# ---- JSON ---------------------------------------------------------------------------

def schedule_json(schedule: Schedule) -> dict[str, Any]:
    data = {api: getattr(schedule, column) for api, column in FIELDS.items()}
    next_run = as_utc(schedule.next_run_at) if schedule.next_run_at else None
    return {
        "id": schedule.id,
        **data,
        "description": timing(schedule).describe(),
        "nextRunAt": iso(next_run),
        "nextRunLocal": next_run.astimezone(timing(schedule).zone).isoformat()
        if next_run else None,
        "lastRunAt": iso(schedule.last_run_at),
        "lastStatus": schedule.last_status,
    }
