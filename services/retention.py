"""Retention: which backups the next clean-up deletes, and carrying it out.

The rules live in ``retention_policies`` (pure, table-tested); this module feeds them the
catalog and deletes what they say, logging every deletion with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from flask import current_app
from sqlalchemy import select

from services import activity, copies, destinations
from services.backups import StoredFile, delete_backup, remove_stored
from services.extensions import db
from services.models import UNRESTORABLE, Backup, BackupCopy, Schedule
from services.retention_policies import (
    BackupFacts,
    CopyDecision,
    CopyFacts,
    Decision,
    Policy,
    plan_copy_trims,
    plan_retention,
)


@dataclass(frozen=True)
class Retained:
    """One backup in the retention preview: the decision, with the backup and the name of
    its schedule (None for a manual or safety backup)."""

    backup_id: str
    reason: str
    delete: bool
    backup: Backup | None
    schedule_name: str | None


def plan(now: datetime | None = None) -> list[Decision]:
    """One decision per backup in the catalog, with its reason."""
    backups = list(db.session.scalars(select(Backup)))
    return _plan(backups, db.session.scalars(select(Schedule)), now)


def preview(now: datetime | None = None) -> list[Retained]:
    """plan(), each decision with its backup and its schedule's name, for the dashboard."""
    backups = {backup.id: backup for backup in db.session.scalars(select(Backup))}
    schedules = {schedule.id: schedule for schedule in db.session.scalars(select(Schedule))}
    rows = []
    for decision in _plan(backups.values(), schedules.values(), now):
        backup = backups.get(decision.backup_id)
        schedule = schedules.get(backup.schedule_id) if backup and backup.schedule_id else None
        rows.append(Retained(decision.backup_id, decision.reason, decision.delete, backup,
                             schedule.name if schedule else None))
    return rows


def _plan(backups: Iterable[Backup], schedules: Iterable[Schedule],
          now: datetime | None) -> list[Decision]:
    policies = {
        schedule.id: Policy(schedule.retention_days, schedule.keep_at_least)
        for schedule in schedules
    }
    return plan_retention([_facts(backup) for backup in backups], policies,
                          now or datetime.now(UTC), _manual_policy())


def _manual_policy() -> Policy | None:
    """Manual and safety backups stay until deleted by hand, unless MANUAL_RETENTION_DAYS."""
    days = current_app.config.get("MANUAL_RETENTION_DAYS")
    return Policy(days, current_app.config.get("MANUAL_KEEP_AT_LEAST", 1)) if days else None


def apply(now: datetime | None = None, schedule_id: int | None = None) -> list[Decision]:
    """Delete what the plan says (only that schedule's backups when given), then the
    copies that their destinations' own retention no longer keeps."""
    deleted = []
    for decision in plan(now):
        if not (decision.delete or decision.trim):
            continue
        backup = db.session.get(Backup, decision.backup_id)
        assert backup is not None  # the plan was made from the catalog's backups just now
        if schedule_id is not None and backup.schedule_id != schedule_id:
            continue
        if decision.trim:
            _trim_unlocked(backup, decision.reason, now)
            continue
        delete_backup(backup.id, actor="retention", reason=decision.reason)
        deleted.append(decision)
    for trim in copy_plan(now):
        if trim.delete:
            _delete_copy(trim.backup_id, trim.destination, trim.reason)
    return deleted


def copy_plan(now: datetime | None = None) -> list[CopyDecision]:
    """What the destinations' own retention decides for each of their stored copies."""
    policies = {d.name: Policy(d.retention_days, d.keep_at_least or 1)
                for d in destinations.list_destinations() if d.retention_days}
    if not policies:
        return []
    stored = db.session.scalars(select(BackupCopy).where(BackupCopy.status == "stored")).all()
    count: dict[str, int] = {}
    for copy in stored:
        count[copy.backup_id] = count.get(copy.backup_id, 0) + 1
    backups = {b.id: b for b in db.session.scalars(
        select(Backup).where(Backup.id.in_(count)))}
    facts = [CopyFacts(copy.backup_id, copy.destination,
                       backups[copy.backup_id].created_at.replace(tzinfo=UTC),
                       _good(backups[copy.backup_id]), count[copy.backup_id],
                       _aware(copy.locked_until))
             for copy in stored if not backups[copy.backup_id].is_active]
    return plan_copy_trims(facts, policies, now or datetime.now(UTC))


def _trim_unlocked(backup: Backup, reason: str, now: datetime | None) -> None:
    """Delete an expired backup's copies that no lock holds; the backup stays for the
    locked ones and goes once their locks end."""
    moment = now or datetime.now(UTC)
    for copy in list(backup.copies):
        locked = _aware(copy.locked_until)
        if locked is None or locked <= moment:
            _delete_copy(backup.id, copy.destination, reason)


def _delete_copy(backup_id: str, destination: str, reason: str) -> None:
    """Forget one copy, then delete its files (never a stored copy without its file)."""
    copy = db.session.scalars(select(BackupCopy).where(
        BackupCopy.backup_id == backup_id, BackupCopy.destination == destination)).one()
    backup = db.session.get(Backup, backup_id)
    assert backup is not None  # a copy's backup: the foreign key says so
    files: list[StoredFile] = [
        (destination, partial(copies.storage_named, destination),
         copies.artifact_of(backup, copy))]
    if copies.keeps_objects(copy):
        files, reason = [], f"{reason}; left to the bucket's lifecycle rules"
    db.session.delete(copy)
    db.session.commit()
    problems = remove_stored(files, backup_id)
    activity.record("copy.delete", f"{backup_id}@{destination}", actor="retention",
                    outcome="failed" if problems else "ok", detail="; ".join([reason, *problems]))


def _good(backup: Backup) -> bool:
    return backup.status == "completed" and backup.verification not in UNRESTORABLE


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def _facts(backup: Backup) -> BackupFacts:
    locks = [copy.locked_until for copy in backup.copies
             if copy.status == "stored" and copy.locked_until is not None]
    return BackupFacts(
        id=backup.id, created=backup.created_at.replace(tzinfo=UTC), status=backup.status,
        verification=backup.verification, type=backup.type, parent_id=backup.parent_id,
        schedule_id=backup.schedule_id, origin=backup.origin,
        locked_until=_aware(max(locks)) if locks else None,
    )
