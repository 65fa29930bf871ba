"""The replication slots the app makes on the protected database, judged against the catalog.

Every full backup leaves a logical slot that holds the changes its chain's next
incremental needs; the server keeps every WAL segment from the slot's position on, so a
slot nothing will read again fills the database server's disk. A slot is **live** while
it is the one its chain continues from (or a running backup is making it) and **stale**
otherwise; stale slots are dropped by the daily clean-up, live ones only by hand.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import select

from pgbackup import BackupError, ConnectionInfo
from pgbackup.slots import SlotInfo, drop_slot, list_slots
from services import activity
from services.backups import target_connection
from services.errors import CatalogError
from services.extensions import db
from services.formatting import filesize
from services.models import ACTIVE_STATUSES, Backup, Schedule, utcnow

log = logging.getLogger(__name__)

SLOT_PREFIX = "pgbackup_"
# pgbackup.capture_readiness proves the output plugin with a short-lived temporary slot of
# this prefix: it belongs to no backup and is gone when the check ends.
_PROBE_PREFIX = f"{SLOT_PREFIX}probe_"
_UNSAFE = re.compile(r"[^a-z0-9]")
CONNECT_TIMEOUT = 5  # seconds: the report serves health checks and scrapes


@dataclass(frozen=True)
class SlotView:
    """One of the app's slots: the WAL it keeps, and why it is live or stale."""

    name: str
    database: str | None
    active: bool  # a connection is using it right now
    retained_wal_bytes: int | None
    live: bool
    reason: str  # a phrase: "holds the changes after backup-..., the end of its chain"
    backup_id: str | None  # the backup that names it
    chain_id: str | None  # the full backup its chain starts with

    @property
    def state(self) -> str:
        return "live" if self.live else "stale"


def slot_name_for(backup_id: str) -> str:
    """The slot a backup creates: ``pgbackup_`` and its id in lower case, every character
    outside [a-z0-9] an underscore (PostgreSQL's rule for slot names)."""
    return SLOT_PREFIX + _UNSAFE.sub("_", backup_id.lower())


def monitoring_connection() -> ConnectionInfo:
    """The protected database with a short connect timeout, unless DATABASE_URL sets one:
    an unreachable server must not hang a health check or a scrape."""
    target = target_connection()
    if "connect_timeout" in conninfo_to_dict(target.conninfo):
        return target
    return ConnectionInfo(make_conninfo(target.conninfo, connect_timeout=CONNECT_TIMEOUT))


def slots_report() -> list[SlotView]:
    """Every slot of the app on the protected database, live or stale; a CatalogError
    (503) when the server cannot be asked."""
    target = monitoring_connection()
    try:
        slots = list_slots(target, SLOT_PREFIX)
    except BackupError as exc:
        raise CatalogError(str(exc), status=503, code="database_unavailable") from None
    making = {slot_name_for(backup.id): backup for backup in db.session.scalars(
        select(Backup).where(Backup.status.in_(ACTIVE_STATUSES)))}
    return [_judge(slot, making) for slot in slots
            if slot.database == target.dbname and not slot.name.startswith(_PROBE_PREFIX)]


def drop_stale(actor: str) -> list[str]:
    """Drop every stale slot that no connection is using; returns their names. Each drop
    is logged in the activity log with the WAL it released (or why it failed)."""
    dropped = []
    for view in slots_report():
        if view.live or view.active:
            continue
        if _drop(view, actor, f"stale: {view.reason}") is None:
            dropped.append(view.name)
    return dropped


def drop(name: str, actor: str, force: bool = False) -> SlotView:
    """Drop one slot by hand. A live one only with ``force``: its chain then cannot
    continue, and the next incremental starts a new chain with a full backup."""
    view = next((view for view in slots_report() if view.name == name), None)
    if view is None:
        raise CatalogError(f"no replication slot {name!r} of this app on the protected "
                           "database", status=404, code="not_found")
    if view.live and not force:
        raise CatalogError(
            f"replication slot {name} is live ({view.reason}): dropping it ends its chain, "
            "and the next incremental backup starts a new chain with a full backup; "
            f"drop it anyway with flask --app app slots drop {name} --force",
            status=409, code="slot_live")
    if view.active:
        raise CatalogError(f"replication slot {name} is in use by a connection (a backup "
                           "running?); try again when it ends", status=409, code="slot_busy")
    error = _drop(view, actor, f"{view.state}{', forced' if view.live else ''}: {view.reason}")
    if error is not None:
        raise CatalogError(error, status=503, code="database_unavailable")
    return view


# ---- judging a slot ---------------------------------------------------------------------

def _judge(slot: SlotInfo, making: dict[str, Backup]) -> SlotView:
    owner = db.session.scalars(select(Backup).where(Backup.slot_name == slot.name)
                               .order_by(Backup.created_at.desc())).first()
    owner = owner or making.get(slot.name)
    if owner is None:
        return _view(slot, False, "no backup in the catalog names it: its backup was "
                     "deleted, or another install made it", None)
    live, reason = _verdict(owner)
    return _view(slot, live, reason, owner)


def _verdict(owner: Backup) -> tuple[bool, str]:
    if owner.is_active:
        return True, f"backup {owner.id} is {owner.status} and makes it"
    if owner.status != "completed":
        return False, f"its backup {owner.id} {owner.status}"
    child = db.session.scalars(select(Backup).where(
        Backup.parent_id == owner.id, Backup.status == "completed")).first()
    if child is not None:
        return False, f"backup {child.id} has taken its chain over"
    retired = _retired(_chain_of(owner))
    if retired:
        return False, f"backup {owner.id} ends a retired chain: {retired}"
    return True, f"holds the changes after backup {owner.id}, the end of its chain"


def _retired(chain: list[Backup]) -> str | None:
    """Why no schedule will continue this chain, or None. A chain made by hand (no
    scheduled backup in it) is never retired this way."""
    scheduled = [backup for backup in chain if backup.origin == "schedule"]
    if not scheduled:
        return None
    limit = timedelta(days=current_app.config["CAPTURE_SLOT_MAX_IDLE_DAYS"])
    reasons: list[str] = []
    for backup in scheduled:
        schedule = db.session.get(Schedule, backup.schedule_id) if backup.schedule_id else None
        if schedule is None:
            reason = "its schedule was deleted"
        elif schedule.enabled or utcnow() - _last_activity(schedule) <= limit:
            return None
        else:
            reason = (f"schedule {schedule.name} is disabled and has not run for more than "
                      f"{limit.days} days")
        if reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons)


def _last_activity(schedule: Schedule) -> datetime:
    """When a disabled schedule last did anything: its last run, else its creation."""
    return max(filter(None, (schedule.last_run_at, schedule.created_at)))


def _chain_of(backup: Backup) -> list[Backup]:
    """``backup`` and its ancestors, the full first."""
    chain = [backup]
    while chain[0].parent is not None:
        chain.insert(0, chain[0].parent)
    return chain


def _view(slot: SlotInfo, live: bool, reason: str, owner: Backup | None) -> SlotView:
    return SlotView(slot.name, slot.database, slot.active, slot.retained_wal_bytes, live,
                    reason, owner.id if owner else None,
                    _chain_of(owner)[0].id if owner else None)


# ---- dropping -------------------------------------------------------------------------

def _drop(view: SlotView, actor: str, why: str) -> str | None:
    """Drop the slot and log it; a failure is logged too (outcome failed) and its error
    returned, not raised."""
    kept = f"it kept {filesize(view.retained_wal_bytes)} of WAL"
    try:
        drop_slot(monitoring_connection(), view.name)
    except BackupError as exc:
        log.warning("replication slot %s not dropped: %s", view.name, exc)
        activity.record("slot.drop", view.name, outcome="failed", actor=actor,
                        detail=f"{why}; {kept}; {exc}")
        return str(exc)
    log.info("dropped replication slot %s (%s; %s)", view.name, why, kept)
    activity.record("slot.drop", view.name, actor=actor, detail=f"{why}; {kept}")
    return None
