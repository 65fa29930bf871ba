"""Retention: which backups the next clean-up deletes, and carrying it out.

The rules live in ``retention_policies`` (pure, table-tested); this module feeds them the
catalog and deletes what they say, logging every deletion with its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

import catalog
from extensions import db
from models import Backup, Schedule
from retention_policies import BackupFacts, Decision, Policy, plan_retention


def plan(now: datetime | None = None) -> list[Decision]:
    """One decision per backup in the catalog, with its reason."""
    backups = [_facts(backup) for backup in db.session.scalars(select(Backup))]
    policies = {
        schedule.id: Policy(schedule.retention_days, schedule.keep_at_least)
        for schedule in db.session.scalars(select(Schedule))
    }
    return plan_retention(backups, policies, now or datetime.now(UTC), _manual_policy())


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
        if schedule_id is not None and backup.schedule_id != schedule_id:
            continue
        catalog.delete_backup(backup.id, actor="retention", reason=decision.reason)
        deleted.append(decision)
    return deleted


def _facts(backup: Backup) -> BackupFacts:
    return BackupFacts(
        id=backup.id, created=backup.created_at.replace(tzinfo=UTC), status=backup.status,
        verification=backup.verification, type=backup.type, parent_id=backup.parent_id,
        schedule_id=backup.schedule_id, origin=backup.origin,
    )
