"""A backup's copies at its destinations.

The copies are recorded with the backup (``pending``), filled in by the backup job as each
destination is written (``stored`` with its size and SHA-256 at the destination, or
``failed`` with the error), and read from by verification and restore: a local copy
first, then the others in the order they were named. A backup is ``completed`` once its
required copies are stored; an optional copy that failed is retried by a copy job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pgbackup import Manifest, Storage
from services import destinations
from services.extensions import db
from services.models import Backup, BackupCopy, Destination, utcnow

STATUSES = ("pending", "stored", "failed", "deleted")


def plan(backup: Backup, names: Sequence[str] | None) -> list[BackupCopy]:
    """Add a pending copy per destination (``names``, or the default ones) to the session;
    the caller commits them together with the backup."""
    planned = [BackupCopy(backup_id=backup.id, destination=destination.name,
                          required=destination.required, encrypted=bool(destination.encrypt_to))
               for destination in destinations.resolve(list(names) if names else None)]
    db.session.add_all(planned)
    return planned


def of(backup: Backup) -> list[BackupCopy]:
    return sorted(backup.copies, key=lambda copy: copy.id or 0)


def destination_of(copy: BackupCopy) -> Destination:
    return destinations.by_name(copy.destination)


def storage_of(copy: BackupCopy) -> Storage:
    return destinations.storage_for(destination_of(copy))


def readable(backup: Backup) -> list[BackupCopy]:
    """The stored copies, local ones first: where to read the backup from."""
    stored = [copy for copy in of(backup) if copy.status == "stored"]
    return sorted(stored, key=lambda copy: destination_of(copy).type != "local")


def record_stored(copy: BackupCopy, manifest: Manifest, location: str,
                  locked_until: datetime | None) -> None:
    copy.status, copy.error = "stored", None
    copy.artifact, copy.size, copy.sha256 = manifest.artifact, manifest.size, manifest.sha256
    copy.location, copy.locked_until, copy.stored_at = location, locked_until, utcnow()
    copy.attempts += 1


def record_failed(copy: BackupCopy, error: str) -> None:
    copy.status, copy.error = "failed", error
    copy.attempts += 1
