"""A backup's copies at its destinations.

The copies are recorded with the backup (``pending``), filled in by the backup job as each
destination is written (``stored`` with its size and SHA-256 at the destination, or
``failed`` with the error), and read from by verification and restore: a local copy
first, then the others in the order they were named, each skipped when it cannot be read.
An optional copy that failed is ``retrying`` while a copy job makes it again
(services.copy_retries); it is never ``stored`` before its manifest is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import current_app

from pgbackup import (
    BackupError,
    LocalStorage,
    Manifest,
    ManifestError,
    ObjectStoreError,
    S3Storage,
    Storage,
    artifact_name,
    manifest_name,
    read_manifest,
)
from pgbackup.archive import missing_identities
from pgbackup.encryption import Identity, load_identities, recipients_of
from pgbackup.targets import Copy, Target
from services import destinations
from services.errors import CatalogError
from services.models import Backup, BackupCopy, Destination, utcnow

log = logging.getLogger(__name__)

RETRYING = "retrying"


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
        try:
            storage = destinations.storage_for(destination)
        except Exception as exc:  # a directory that cannot be made, a key that will not decrypt
            if copy.required:
                raise BackupError(f"writing to {destination.name} failed: {exc}") from exc
            record_failed(copy, f"cannot open {destination.name}: {exc}")
            continue  # an optional destination fails alone, as it would while writing
        pairs.append((copy, Target(destination.name, storage,
                                   tuple(destination.encrypt_to or ()), copy.required)))
    return pairs


def record(copy: BackupCopy, result: Copy) -> None:
    """What the dump did at ``copy``'s destination."""
    if result.manifest is None:
        record_failed(copy, result.error or "not stored")
        return
    record_stored_at(copy, result.manifest, result.target.storage)


# ---- reading: the first copy that can be read ---------------------------------------

@dataclass(frozen=True)
class Source:
    """The copy a backup is read from, and why the copies before it were skipped."""

    storage: Storage
    copy: BackupCopy | None  # None: a backup from before copies, read from BACKUP_DIR
    skipped: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        """One sentence for results: which copy was read, when others were skipped."""
        if not self.skipped or self.copy is None:
            return None
        return (f"read the copy at {self.copy.destination}: skipped "
                + "; ".join(self.skipped))


class Unreadable(Exception):
    """A copy that cannot be read now (unreachable, missing, no identity for it)."""


def source(backup: Backup, decrypting: bool = True,
           besides: BackupCopy | None = None) -> Source:
    """Where to read ``backup`` from: its stored copies, local ones first, skipping those
    that cannot be read (with ``decrypting``, also encrypted ones without an identity for
    them), and ``besides``. None readable: the first, whose reading then says what is
    wrong. A backup without copy records is read from BACKUP_DIR."""
    if not backup.copies:
        return Source(LocalStorage(current_app.config["BACKUP_DIR"]), None)
    stored = [copy for copy in readable(backup) if copy is not besides]
    if not stored:
        raise CatalogError(f"backup {backup.id} has no stored copy to read from",
                           status=409, code="backup_missing")
    skipped: list[str] = []
    for copy in stored:
        try:
            return Source(_probe(backup, copy, decrypting), copy, skipped)
        except Unreadable as exc:
            skipped.append(f"{copy.destination} ({exc})")
    return Source(storage_of(stored[0]), stored[0])


def _probe(backup: Backup, copy: BackupCopy, decrypting: bool) -> Storage:
    """``copy``'s storage if its manifest and artifact can be read; else Unreadable."""
    try:
        storage = storage_of(copy)
        manifest = read_manifest(storage, backup.id)
        if not storage.exists(manifest.artifact):
            raise Unreadable(f"its artifact {manifest.artifact} is missing")
    except FileNotFoundError:
        raise Unreadable(f"its manifest {manifest_name(backup.id)} is missing") from None
    except (ObjectStoreError, OSError, CatalogError, ManifestError) as exc:
        raise Unreadable(str(exc)) from None
    if decrypting and (problem := _no_identity(manifest)):
        raise Unreadable(problem)
    return storage


def _no_identity(manifest: Manifest) -> str | None:
    """Why an encrypted copy cannot be decrypted here, if it cannot."""
    keys = identities()
    if problem := missing_identities(manifest, keys):
        return problem
    if manifest.encryption and not set(recipients_of(keys or [])) & set(
            manifest.encryption.recipients):
        return "no configured identity is among its recipients"
    return None


def identities() -> list[Identity] | None:
    """The age identities of BACKUP_AGE_IDENTITIES, to decrypt encrypted copies."""
    path = current_app.config.get("BACKUP_AGE_IDENTITIES")
    return load_identities(Path(path)) if path else None


def artifact_of(backup: Backup, copy: BackupCopy) -> str:
    """The artifact's name at ``copy``'s destination, recorded or not yet: an encrypted
    copy's ends in ``.age``."""
    return copy.artifact or artifact_name(backup.id, backup.compress, encrypted=copy.encrypted,
                                          kind=backup.type)


def of(backup: Backup) -> list[BackupCopy]:
    return sorted(backup.copies, key=lambda copy: copy.id or 0)


def destination_of(copy: BackupCopy) -> Destination:
    return destinations.by_name(copy.destination)


def storage_of(copy: BackupCopy) -> Storage:
    return storage_named(copy.destination)


def storage_named(destination: str) -> Storage:
    return destinations.storage_for(destinations.by_name(destination))


def keeps_objects(copy: BackupCopy) -> bool:
    """Whether ``copy``'s destination never deletes (``deleteObjects: false``: a key
    without delete permission), leaving its objects to the bucket's lifecycle rules."""
    try:
        return (destination_of(copy).settings or {}).get("deleteObjects", True) is False
    except CatalogError:  # its destination is gone: nothing to ask
        return False


def readable(backup: Backup) -> list[BackupCopy]:
    """The stored copies, local ones first: where to read the backup from."""
    stored = [copy for copy in of(backup) if copy.status == "stored"]
    return sorted(stored, key=lambda copy: not _is_local(copy))


def _is_local(copy: BackupCopy) -> bool:
    try:
        return destination_of(copy).type == "local"
    except CatalogError:  # its destination is gone: read last
        return False


# ---- recording ------------------------------------------------------------------------

def record_stored_at(copy: BackupCopy, manifest: Manifest, storage: Storage) -> None:
    artifact = manifest.artifact
    locked = storage.locked_until(artifact) if isinstance(storage, S3Storage) else None
    record_stored(copy, manifest, storage.location(artifact),
                  locked.replace(tzinfo=None) if locked else None)


def record_stored(copy: BackupCopy, manifest: Manifest, location: str,
                  locked_until: datetime | None) -> None:
    copy.status, copy.error = "stored", None
    copy.artifact, copy.size, copy.sha256 = manifest.artifact, manifest.size, manifest.sha256
    copy.encrypted = manifest.encryption is not None
    copy.location, copy.locked_until = location, locked_until
    copy.stored_at = copy.attempted_at = utcnow()
    copy.attempts += 1


def record_failed(copy: BackupCopy, error: str, retrying: bool = False) -> None:
    """A failed write; ``retrying`` when another attempt is queued."""
    copy.status, copy.error = RETRYING if retrying else "failed", error
    copy.attempted_at = utcnow()
    copy.attempts += 1
