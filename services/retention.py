"""Retention: which backups the next clean-up deletes, and carrying it out.

The rules live in ``retention_policies`` (pure, table-tested); this module feeds them the
catalog and deletes what they say, logging every deletion with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

from services.backups import delete_backup
from services.extensions import db
from services.models import Backup, Schedule
from services.retention_policies import BackupFacts, Decision, Policy, plan_retention


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
    """Delete what the plan says (only that schedule's backups when given)."""
    deleted = []
    for decision in plan(now):
        if not decision.delete:
            continue
        backup = db.session.get(Backup, decision.backup_id)
        assert backup is not None  # the plan was made from the catalog's backups just now
        if schedule_id is not None and backup.schedule_id != schedule_id:
            continue
        delete_backup(backup.id, actor="retention", reason=decision.reason)
        deleted.append(decision)
    return deleted


def _facts(backup: Backup) -> BackupFacts:
    return BackupFacts(
        id=backup.id, created=backup.created_at.replace(tzinfo=UTC), status=backup.status,
        verification=backup.verification, type=backup.type, parent_id=backup.parent_id,
        schedule_id=backup.schedule_id, origin=backup.origin,
    )
