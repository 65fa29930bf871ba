"""A backup's copies at its destinations.

The copies are recorded with the backup (``pending``), filled in by the backup job as each
destination is written (``stored`` with its size and SHA-256 at the destination, or
``failed`` with the error), and read from by verification and restore: a local copy
first, then the others in the order they were named. A backup is ``completed`` once its
required copies are stored; an optional copy that failed stays ``failed`` (not retried
yet: see docs/destinations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from flask import current_app

from pgbackup import LocalStorage, Manifest, S3Storage, Storage, artifact_name
from pgbackup.dump import Copy, Target
from pgbackup.encryption import Identity, load_identities
from services import destinations
from services.errors import CatalogError
from services.models import Backup, BackupCopy, Destination, utcnow


def plan(backup: Backup, chosen: Sequence[Destination]) -> list[BackupCopy]:
    """A pending copy per destination, added to the backup; the caller commits them
    together with the backup."""
    planned = [BackupCopy(destination=destination.name, required=destination.required,
                          encrypted=bool(destination.encrypt_to), status="pending", attempts=0)
               for destination in chosen]
    backup.copies.extend(planned)
    return planned


def targets(backup: Backup) -> list[tuple[BackupCopy, Target]]:
    """The engine's targets for a backup's pending copies (planned with the default
    destinations when the backup has none yet: a safety backup, say)."""
    if not backup.copies:
        plan(backup, destinations.resolve(None))
    pairs = []
    for copy in of(backup):
        destination = destination_of(copy)
        pairs.append((copy, Target(destination.name, destinations.storage_for(destination),
                                   tuple(destination.encrypt_to or ()), copy.required)))
    return pairs


def record(copy: BackupCopy, result: Copy) -> None:
    """What the dump did at ``copy``'s destination."""
    if result.manifest is None:
        record_failed(copy, result.error or "not stored")
        return
    storage, artifact = result.target.storage, result.manifest.artifact
    locked = storage.locked_until(artifact) if isinstance(storage, S3Storage) else None
    record_stored(copy, result.manifest, storage.location(artifact),
                  locked.replace(tzinfo=None) if locked else None)


def source(backup: Backup) -> tuple[Storage, BackupCopy | None]:
    """Where to read ``backup`` from: its first stored copy, local ones first. A backup
    without copy records is read from BACKUP_DIR."""
    if not backup.copies:
        return LocalStorage(current_app.config["BACKUP_DIR"]), None
    for copy in readable(backup):
        return storage_of(copy), copy
    raise CatalogError(f"backup {backup.id} has no stored copy to read from",
                       status=409, code="backup_missing")


def identities() -> list[Identity] | None:
    """The age identities of BACKUP_AGE_IDENTITIES, to decrypt encrypted copies."""
    path = current_app.config.get("BACKUP_AGE_IDENTITIES")
    return load_identities(Path(path)) if path else None


def artifact_of(backup: Backup, copy: BackupCopy) -> str:
    """The artifact's name at ``copy``'s destination, recorded or not yet: an encrypted
    copy's ends in ``.age``."""
    return copy.artifact or artifact_name(backup.id, backup.compress, encrypted=copy.encrypted)


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
