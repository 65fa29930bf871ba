"""What the ``change-capture`` health check finds: whether change capture can run on the
protected database (each reason with its fix), and which of the app's replication slots
keep more WAL than SLOT_WAL_WARNING_BYTES or SLOT_WAL_CRITICAL_BYTES.

Capture that cannot run is a warning, not critical: full backups still work, they only
start no chain for incrementals and point-in-time restore.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from flask import current_app

from pgbackup import BackupError
from pgbackup.capture_readiness import Readiness, capture_readiness
from services.capture_slots import SlotView, monitoring_connection, slots_report
from services.errors import CatalogError
from services.formatting import filesize

# A ready server stays ready for this long: the readiness check creates a temporary slot,
# which waits for running transactions, too slow and busy for every health call.
READY_TTL = 300.0  # seconds
_ready_at: dict[str, float] = {}  # conninfo: when it was last found ready (monotonic)


@dataclass(frozen=True)
class Finding:
    status: str  # warning or critical
    problem: str  # a sentence
    fix: str  # a sentence


@dataclass
class Assessment:
    findings: list[Finding] = field(default_factory=list)
    summary: str = ""  # what is fine, for an ok check
    data: dict[str, Any] = field(default_factory=dict)


def assess() -> Assessment:
    """Readiness and the slots' WAL, as findings (none when all is well)."""
    config = current_app.config
    warning, critical = config["SLOT_WAL_WARNING_BYTES"], config["SLOT_WAL_CRITICAL_BYTES"]
    result = Assessment(data={"warningBytes": warning, "criticalBytes": critical})
    _readiness_findings(result)
    try:
        slots = slots_report()
    except CatalogError as exc:
        result.findings.append(Finding("warning", f"The replication slots cannot be read: "
                                       f"{exc.message}.", "See the database check."))
        return result
    result.data["slots"] = [_slot_json(slot) for slot in slots]
    result.findings += [finding for slot in slots
                        if (finding := _wal_finding(slot, warning, critical))]
    result.summary = _summary(slots)
    return result


def _readiness_findings(result: Assessment) -> None:
    try:
        readiness = cached_readiness()
    except BackupError as exc:
        result.findings.append(Finding("warning", f"{exc}.", "See the database check."))
        return
    result.data.update(possible=readiness.ok,
                       problems=[asdict(problem) for problem in readiness.problems])
    if not readiness.ok:
        result.findings.append(_not_ready(readiness))


def cached_readiness() -> Readiness:
    """capture_readiness of the protected database; a ready one is remembered READY_TTL
    (a problem is looked at again every time: its fix should show at once)."""
    conn = monitoring_connection()
    if time.monotonic() - _ready_at.get(conn.conninfo, -READY_TTL) < READY_TTL:
        return Readiness(True, [])
    readiness = capture_readiness(conn)
    if readiness.ok:
        _ready_at[conn.conninfo] = time.monotonic()
    return readiness


def capture_problem() -> Finding | None:
    """Why change capture cannot run now, with the fix (None: it can, or the database
    cannot be reached, which the database check reports)."""
    try:
        readiness = cached_readiness()
    except BackupError:
        return None
    return None if readiness.ok else _not_ready(readiness)


def _not_ready(readiness: Readiness) -> Finding:
    sentences = " ".join(problem.sentence for problem in readiness.problems)
    return Finding("warning", "Change capture is not possible, so full backups start no "
                   f"chain for incrementals or point-in-time restore: {sentences}",
                   " ".join(problem.fix for problem in readiness.problems))


def _wal_finding(slot: SlotView, warning: int, critical: int) -> Finding | None:
    kept = slot.retained_wal_bytes or 0
    if kept <= warning:
        return None
    level, limit = ("critical", critical) if kept > critical else ("warning", warning)
    problem = (f"Replication slot {slot.name} keeps {filesize(kept)} of WAL on the database "
               f"server, over the {level} threshold of {filesize(limit)} ({slot.state}: "
               f"{slot.reason}).")
    if slot.live:
        fix = (f"Run an incremental backup, which moves its chain onto a new slot, or drop "
               f"it with flask --app app slots drop {slot.name} --force (the chain then "
               "ends: the next incremental starts a new chain).")
    else:
        fix = f"Drop it with flask --app app slots drop {slot.name} (nothing needs it)."
    return Finding(level, problem, fix)


def _summary(slots: list[SlotView]) -> str:
    if not slots:
        return "change capture is possible; no replication slot of this app yet"
    largest = max(slots, key=lambda slot: slot.retained_wal_bytes or 0)
    count = f"{len(slots)} replication slot{'' if len(slots) == 1 else 's'}"
    return (f"change capture is possible; {count}, the largest ({largest.name}) keeps "
            f"{filesize(largest.retained_wal_bytes or 0)} of WAL")


def _slot_json(slot: SlotView) -> dict[str, Any]:
    return {"name": slot.name, "state": slot.state, "reason": slot.reason,
            "backupId": slot.backup_id, "chainId": slot.chain_id, "active": slot.active,
            "retainedWalBytes": slot.retained_wal_bytes}
