"""Chains of backups in the app: which slot a full backup starts a chain on (or why none),
which backup an incremental continues, what the catalog records of a chain, and retiring
a slot once a newer backup has taken the chain over.

Only the newest chain of the protected database continues: a new full with capture takes
over from the previous head, whose slot is then dropped. An incremental with no chain to
continue (none yet, its slot gone, the schema changed) starts a new chain with a full
backup instead, and says why in the backup's ``capture_note`` (pgBackRest does the same).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

from pgbackup import BackupError, Manifest, read_manifest
from pgbackup.capture_readiness import capture_readiness
from pgbackup.slots import drop_slot, list_slots
from services import activity, copies
from services.backups import target_connection
from services.capture_slots import SLOT_PREFIX, slot_name_for
from services.extensions import db
from services.models import Backup

log = logging.getLogger(__name__)


def start_slot(backup: Backup) -> tuple[str | None, str | None]:
    """The slot a full backup starts its chain on, or None and why it starts none."""
    if backup.origin == "safety":
        return None, None  # taken just before a restore replaces the database
    if not current_app.config["CHANGE_CAPTURE"]:
        return None, "no chain started: change capture is off (CHANGE_CAPTURE=false)"
    readiness = capture_readiness(target_connection())
    if not readiness.ok:
        reasons = " ".join(f"{problem.sentence} Fix: {problem.fix}"
                           for problem in readiness.problems)
        return None, f"no chain started: {reasons}"
    return slot_name_for(backup.id), None


def chain_head(database: str) -> Backup | None:
    """The newest completed backup of ``database`` that holds a chain's slot: what the next
    incremental continues."""
    return db.session.scalars(
        select(Backup).where(Backup.database == database, Backup.status == "completed",
                             Backup.slot_name.is_not(None))
        .order_by(Backup.created_at.desc(), Backup.id.desc())).first()


def manifest_of(backup: Backup) -> Manifest:
    """The manifest of ``backup``'s first readable copy."""
    return read_manifest(copies.source(backup).storage, backup.id)


def record(backup: Backup, manifest: Manifest) -> None:
    """What the catalog keeps of a backup's capture (the caller commits)."""
    capture = manifest.capture
    if capture is None:
        return
    backup.slot_name, backup.start_lsn, backup.end_lsn = (
        capture.slot, capture.start_lsn, capture.end_lsn)
    backup.consistent_at = _naive(capture.consistent_at)
    backup.covers_until = _naive(capture.covers_until)
    backup.first_commit_at = _naive(capture.first_commit)
    backup.last_commit_at = _naive(capture.last_commit)
    if manifest.type == "incremental":
        backup.transactions, backup.changes = capture.transactions, capture.changes


def retire(previous: Backup | None, successor: Backup) -> None:
    """Drop the slot of the chain head ``successor`` took over from; a slot that cannot be
    dropped now is left to the daily clean-up of stale slots (services.capture_slots)."""
    if previous is None or previous.slot_name is None or successor.slot_name is None:
        return
    try:
        dropped = drop_slot(target_connection(), previous.slot_name)
    except BackupError as exc:
        log.warning("could not drop replication slot %s: %s", previous.slot_name, exc)
        return
    if dropped:  # not when it was gone already (the reason a new chain started)
        activity.record("slot.drop", previous.slot_name, actor="worker",
                        detail=f"taken over by backup {successor.id}")


def end_chains_on(database: str, reason: str) -> list[str]:
    """Drop the app's slots on ``database`` (a database a restore has just replaced: its
    changes are no longer the protected database's, and a slot keeps it from being
    dropped)."""
    server = target_connection()
    dropped = []
    for slot in list_slots(server, SLOT_PREFIX):
        if slot.database == database and drop_slot(server, slot.name):
            dropped.append(slot.name)
            activity.record("slot.drop", slot.name, actor="worker", detail=reason)
    return dropped


def _naive(value: datetime | None) -> datetime | None:
    """UTC without its zone, as the catalog stores times."""
    return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None
