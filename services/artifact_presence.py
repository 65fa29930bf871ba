"""Are a completed backup's files still in BACKUP_DIR as its catalog row records them?

Two depths. :func:`check_files` only stats the artifact and the manifest, so it runs for
every backup shown (a page is at most 200 rows) and in the health check: a backup whose
files are gone becomes ``missing``, one whose artifact changed size ``corrupted``, until a
verification finds it whole again. :func:`check_stored` is what verifications and restores
trust: the engine's integrity check of the files, plus a ``catalog`` check that the row
(filename, size, sha256) still describes what the manifest records.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app

from pgbackup import (
    Check,
    Manifest,
    VerifyResult,
    check_integrity,
    manifest_name,
    read_manifest,
)
from services import activity, copies, manifest_key
from services.json_shapes import verification_record
from services.models import Backup, BackupCopy

MISSING = "missing"
CLAIMED_WHOLE = ("unverified", "valid")  # the verifications this check can contradict


def check_files(backups: Iterable[Backup]) -> list[Backup]:
    """Mark the completed backups among ``backups`` whose files are not as recorded as
    ``missing`` or ``corrupted`` (see :func:`state_of`; committed, with one
    ``backup.missing`` / ``backup.corrupted`` event each); returns those."""
    lost: list[Backup] = []
    if not _judgeable():
        return lost
    for backup in backups:
        if backup.status != "completed" or backup.verification not in CLAIMED_WHOLE:
            continue
        failed = failed_check(backup)
        if failed is None:
            continue
        now = datetime.now(UTC)
        backup.verification = state_of(failed)
        backup.verification_result = verification_record(
            VerifyResult("presence", [failed], [], now))
        backup.verified_at = now.replace(tzinfo=None)
        activity.record(f"backup.{backup.verification}", backup.id, outcome="failed",
                        detail=failed.detail, actor="system")  # commits the backup too
        lost.append(backup)
    return lost


def _judgeable() -> bool:
    """A BACKUP_DIR that is gone or empty is more likely an unmounted disk than every
    backup lost at once: no backup is marked then (the health check's ``disk`` and
    ``destinations`` say what is wrong with the directory)."""
    try:  # scandir reads the directory a batch at a time: one entry is enough here
        with os.scandir(current_app.config["BACKUP_DIR"]) as entries:
            return next(entries, None) is not None
    except OSError:
        return False


def state_of(failed: Check) -> str:
    """A file that is gone makes a backup ``missing``; one that changed, ``corrupted``."""
    return MISSING if failed.name in ("artifact-exists", "manifest") else "corrupted"


def check_stored(backup: Backup, source: copies.Source | None = None) -> VerifyResult:
    """The integrity check of the copy ``backup`` is read from (``source``, else the first
    readable one, local first), then a ``catalog`` check of what the catalog recorded for
    that copy; a warning names the copy when others were skipped. Encrypted copies are
    decrypted with BACKUP_AGE_IDENTITIES when it is set; the manifest's signature is
    checked with the app's manifest key."""
    source = source or copies.source(backup, decrypting=False)
    store, copy = source.storage, source.copy
    result = check_integrity(store, backup.id, identities=copies.identities(),
                             manifest_key=manifest_key.key())
    if result.checks[0].ok:  # the manifest is readable and names this backup
        result.checks.append(_row_check(backup, copy, read_manifest(store, backup.id)))
    if source.note:
        result.warnings.append(source.note)
    return result


def _row_check(backup: Backup, copy: BackupCopy | None, manifest: Manifest) -> Check:
    """The catalog's record of the copy read, and the backup row when that copy is the one
    the row describes (the first one stored), against the copy's manifest."""
    rows = [(backup.filename, backup.size, backup.sha256)]
    if copy is not None:
        primary = next((c for c in copies.of(backup) if c.status == "stored"), None)
        rows = [(copy.artifact, copy.size, copy.sha256), *(rows if copy is primary else [])]
    stored = (manifest.artifact, manifest.size, manifest.sha256)
    wrong = [f"{key} {recorded} (the manifest says {actual})"
             for row in rows for key, recorded, actual in zip(
                 ("filename", "size", "sha256"), row, stored, strict=True)
             if recorded != actual]
    if wrong:
        return Check("catalog", False, "the catalog row does not describe the stored backup: "
                     + "; ".join(dict.fromkeys(wrong)))
    return Check("catalog", True, "the catalog row matches the manifest")


def problem(backup: Backup) -> str:
    """What the presence check found wrong with a ``missing`` backup."""
    checks = (backup.verification_result or {}).get("checks") or []
    return "; ".join(check["detail"] for check in checks if not check["ok"])


def failed_check(backup: Backup) -> Check | None:
    """The first of the integrity checks' cheap parts that fails, named as they are, for
    the copy in BACKUP_DIR (a backup without one is not checked here: its destinations
    are checked by verification). A local copy that is gone does not make a backup
    ``missing`` while another copy is stored: verification and restore read that one."""
    failed = _local_failure(backup)
    if failed is not None and state_of(failed) == MISSING and any(
            copy.status == "stored" and copy.destination != "local" for copy in backup.copies):
        return None
    return failed


def _local_failure(backup: Backup) -> Check | None:
    local = [copy for copy in backup.copies
             if copy.destination == "local" and copy.status == "stored"]
    if backup.copies and not local:
        return None
    filename = local[0].artifact if local and local[0].artifact else backup.filename
    assert filename is not None  # a completed backup has its artifact's name
    directory = Path(current_app.config["BACKUP_DIR"])
    artifact = directory / filename
    recorded = local[0].size if local else backup.size
    if not artifact.is_file():
        return Check("artifact-exists", False,
                     f"the artifact {filename} is missing from BACKUP_DIR")
    size = artifact.stat().st_size
    if recorded is not None and size != recorded:
        return Check("size", False, f"the artifact {filename} is {size} bytes, the "
                     f"backup recorded {recorded}")
    manifest = manifest_name(backup.id)
    if not (directory / manifest).is_file():
        return Check("manifest", False, f"the manifest {manifest} is missing from BACKUP_DIR")
    return None
