"""Are a completed backup's files still in BACKUP_DIR as its catalog row records them?

Two depths. :func:`check_files` only stats the artifact and the manifest, so it runs for
every backup shown (a page is at most 200 rows) and in the health check: a backup whose
files are gone becomes ``missing``, one whose artifact changed size ``corrupted``, until a
verification finds it whole again. :func:`check_stored` is what verifications and restores
trust: the engine's integrity check of the files, plus a ``catalog`` check that the row
(filename, size, sha256) still describes what the manifest records.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app

from pgbackup import (
    Check,
    LocalStorage,
    Manifest,
    VerifyResult,
    check_integrity,
    manifest_name,
    read_manifest,
)
from services import activity
from services.json_shapes import verification_record
from services.models import Backup

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
    directory = Path(current_app.config["BACKUP_DIR"])
    try:
        return any(directory.iterdir())
    except OSError:
        return False


def state_of(failed: Check) -> str:
    """A file that is gone makes a backup ``missing``; one that changed, ``corrupted``."""
    return MISSING if failed.name in ("artifact-exists", "manifest") else "corrupted"


def check_stored(backup: Backup) -> VerifyResult:
    """The integrity check of ``backup``'s files, then a ``catalog`` check of its row."""
    store = LocalStorage(current_app.config["BACKUP_DIR"])  # catalog.storage(), which imports us
    result = check_integrity(store, backup.id)
    if result.checks[0].ok:  # the manifest is readable and names this backup
        result.checks.append(_row_check(backup, read_manifest(store, backup.id)))
    return result


def _row_check(backup: Backup, manifest: Manifest) -> Check:
    recorded = {"filename": backup.filename, "size": backup.size, "sha256": backup.sha256}
    stored = {"filename": manifest.artifact, "size": manifest.size, "sha256": manifest.sha256}
    wrong = [f"{key} {recorded[key]} (the manifest says {stored[key]})"
             for key in recorded if recorded[key] != stored[key]]
    if wrong:
        return Check("catalog", False, "the catalog row does not describe the stored backup: "
                     + "; ".join(wrong))
    return Check("catalog", True, "the catalog row matches the manifest")


def problem(backup: Backup) -> str:
    """What the presence check found wrong with a ``missing`` backup."""
    checks = (backup.verification_result or {}).get("checks") or []
    return "; ".join(check["detail"] for check in checks if not check["ok"])


def failed_check(backup: Backup) -> Check | None:
    """The first of the integrity checks' cheap parts that fails, named as they are."""
    assert backup.filename is not None  # a completed backup has its artifact's name
    directory = Path(current_app.config["BACKUP_DIR"])
    artifact = directory / backup.filename
    if not artifact.is_file():
        return Check("artifact-exists", False,
                     f"the artifact {backup.filename} is missing from BACKUP_DIR")
    size = artifact.stat().st_size
    if backup.size is not None and size != backup.size:
        return Check("size", False, f"the artifact {backup.filename} is {size} bytes, the "
                     f"backup recorded {backup.size}")
    manifest = manifest_name(backup.id)
    if not (directory / manifest).is_file():
        return Check("manifest", False, f"the manifest {manifest} is missing from BACKUP_DIR")
    return None
