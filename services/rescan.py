"""Rebuilding the catalog from the manifests found on destinations (a rescan).

A fresh install (or one whose catalog was lost) pointed at its destinations gets its
backups back: every manifest is read and judged by the engine (pgbackup.scan); each backup
found becomes a completed ``rescan`` backup with a stored copy per destination it was found
at. Rows that exist are left as they are, so a second rescan adds nothing. Only manifests
signed with this install's manifest key are imported, unless ``accept_foreign`` also takes
unsigned ones and those signed with another key (after their artifact's size and SHA-256
were checked).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError

from jobs.queues import BACKUP_QUEUE, FAILURE_TTL, JOB_TIMEOUT, RESULT_TTL, queue
from pgbackup import ConfigError, Manifest, ObjectStoreError, S3Storage, Storage
from pgbackup.scan import ALARMING, Scanned, scan
from services import activity, capture, destinations, manifest_key, secretbox
from services.errors import CatalogError
from services.extensions import db
from services.models import Backup, BackupCopy, Destination, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    destination: str
    file: str
    reason: str  # pgbackup.scan.Reason, or "unreachable" for a destination
    detail: str


@dataclass
class RescanReport:
    """What a rescan found: ``found`` manifests read, backups ``imported`` (new rows),
    ``copies_added`` to known backups, ``already_known`` manifests, and every one skipped
    with its reason."""

    destinations: list[str] = field(default_factory=list)
    found: int = 0
    imported: list[str] = field(default_factory=list)
    copies_added: list[str] = field(default_factory=list)  # "<backup id>@<destination>"
    already_known: int = 0
    accepted_foreign: list[str] = field(default_factory=list)  # "<backup id>@<destination>"
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def alarming(self) -> list[Skipped]:
        """Manifests skipped as tampered or forged: someone changed them."""
        return [item for item in self.skipped if item.reason in ALARMING]

    def as_json(self) -> dict[str, Any]:
        """The report as the job's result and the API show it (camelCase)."""
        return {"destinations": self.destinations, "found": self.found,
                "imported": self.imported, "copiesAdded": self.copies_added,
                "alreadyKnown": self.already_known, "acceptedForeign": self.accepted_foreign,
                "skipped": [asdict(item) for item in self.skipped]}


def rescan(destination: str | None = None, accept_foreign: bool = False,
           quick: bool = False, actor: str = "system") -> RescanReport:
    """Import the backups found at ``destination`` (None: ``local`` and every configured
    destination, in that order)."""
    chosen = ([destinations.by_name(destination)] if destination
              else destinations.list_destinations())
    report = RescanReport()
    key = manifest_key.key()
    for target in chosen:
        report.destinations.append(target.name)
        try:
            storage = destinations.storage_for(target, lock=False)
            for scanned in scan(storage, key, accept_foreign, quick):
                _take(report, target, storage, scanned, actor)
        except (ConfigError, ObjectStoreError, OSError, secretbox.SecretBoxError) as exc:
            db.session.rollback()
            report.skipped.append(Skipped(target.name, "", "unreachable", str(exc)))
    activity.record("destinations.rescan", destination or "all", actor=actor,
                    outcome="failed" if report.alarming else "ok", detail=_summary(report))
    return report


def _take(report: RescanReport, target: Destination, storage: Storage, scanned: Scanned,
          actor: str) -> None:
    report.found += 1
    if scanned.manifest is None:
        report.skipped.append(Skipped(target.name, scanned.name, scanned.reason or "",
                                      scanned.detail))
        log.warning("rescan of %s skipped %s: %s", target.name, scanned.name, scanned.detail)
        return
    manifest = scanned.manifest
    where = f"{manifest.backup_id}@{target.name}"
    backup = db.session.get(Backup, manifest.backup_id)
    if backup is not None and not _takes_copy(backup, target.name):
        report.already_known += 1
        return
    copy = _stored_copy(target, storage, manifest)  # may fail: before anything changes
    if backup is None:
        backup = _new_backup(manifest)
        db.session.add(backup)
        report.imported.append(manifest.backup_id)
    else:
        report.copies_added.append(where)
    if scanned.authenticity != "authenticated":
        report.accepted_foreign.append(where)
    backup.copies.append(copy)
    activity.record("backup.import", manifest.backup_id, actor=actor,
                    detail=f"found at {target.name} ({scanned.authenticity} manifest)")


def _takes_copy(backup: Backup, destination: str) -> bool:
    """A known completed backup gets a copy record for a destination it has none at; one
    without copy records (from before destinations) is read from BACKUP_DIR and left so."""
    return (backup.status == "completed" and bool(backup.copies)
            and all(copy.destination != destination for copy in backup.copies))


def _new_backup(manifest: Manifest) -> Backup:
    created = manifest.created.replace(tzinfo=None)
    parent = manifest.parent_id if manifest.parent_id and db.session.get(
        Backup, manifest.parent_id) else None
    backup = Backup(
        id=manifest.backup_id, database=manifest.database, type=manifest.type,
        status="completed", compress=manifest.compression == "zstd",
        filename=manifest.artifact, size=manifest.size, sha256=manifest.sha256,
        origin="rescan", verification="unverified", parent_id=parent, created_at=created,
        started_at=created, finished_at=created + timedelta(milliseconds=manifest.duration_ms),
        duration_ms=manifest.duration_ms, tables=[asdict(table) for table in manifest.tables],
    )
    capture.record(backup, manifest)  # a chain found again restores to a point in time
    return backup


def _stored_copy(target: Destination, storage: Storage, manifest: Manifest) -> BackupCopy:
    locked = (storage.locked_until(manifest.artifact) if isinstance(storage, S3Storage)
              else None)
    return BackupCopy(
        destination=target.name, required=target.required, status="stored",
        artifact=manifest.artifact, size=manifest.size, sha256=manifest.sha256,
        location=storage.location(manifest.artifact),
        encrypted=manifest.encryption is not None,
        locked_until=locked.replace(tzinfo=None) if locked else None,
        attempts=0, stored_at=utcnow(),
    )


def _summary(report: RescanReport) -> str:
    return (f"{report.found} manifests: {len(report.imported)} backups imported, "
            f"{len(report.copies_added)} copies added, {report.already_known} already "
            f"known, {len(report.skipped)} skipped")


def start_rescan(destination: str | None, accept_foreign: bool, actor: str) -> str:
    """Queue a rescan (jobs.rescan.run_rescan); returns its job id. An unknown destination
    is refused here, before anything is queued."""
    if destination is not None:
        destinations.by_name(destination)
    job_id = f"rescan-{secrets.token_hex(4)}"
    try:
        queue(BACKUP_QUEUE).enqueue(
            "jobs.rescan.run_rescan", destination, accept_foreign, job_id=job_id,
            description=f"rescan of {destination or 'every destination'}",
            job_timeout=JOB_TIMEOUT, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
    except RedisError as exc:
        raise CatalogError.queue_unavailable(exc, "nothing was started") from exc
    activity.record("destinations.rescan.start", destination or "all", actor=actor,
                    detail=f"job {job_id}")
    return job_id
