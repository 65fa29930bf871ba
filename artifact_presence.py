"""Are a completed backup's files still in BACKUP_DIR as recorded? A cheap check on read.

Verification hashes the whole artifact; this only stats the artifact and the manifest, so
it runs for every backup shown (a page is at most 200 rows) and in the health check. A
backup whose files are gone, or whose artifact changed size, becomes ``missing`` until a
verification finds it whole again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app

import activity
from models import Backup
from pgbackup import Check, VerifyResult, manifest_name

MISSING = "missing"
CLAIMED_WHOLE = ("unverified", "valid")  # the verifications this check can contradict


def check_files(backups: Iterable[Backup]) -> list[Backup]:
    """Mark the completed backups among ``backups`` whose files are not as recorded as
    ``missing`` (committed, with one ``backup.missing`` event each); returns those."""
    lost = []
    for backup in backups:
        if backup.status != "completed" or backup.verification not in CLAIMED_WHOLE:
            continue
        failed = failed_check(backup)
        if failed is None:
            continue
        now = datetime.now(UTC)
        backup.verification = MISSING
        backup.verification_result = VerifyResult("presence", [failed], [], now).to_dict()
        backup.verified_at = now.replace(tzinfo=None)
        activity.record("backup.missing", backup.id, outcome="failed", detail=failed.detail,
                        actor="system")  # commits the backup too
        lost.append(backup)
    return lost


def problem(backup: Backup) -> str:
    """What the presence check found wrong with a ``missing`` backup."""
    checks = (backup.verification_result or {}).get("checks") or []
    return "; ".join(check["detail"] for check in checks if not check["ok"])


def failed_check(backup: Backup) -> Check | None:
    """The first of the integrity checks' cheap parts that fails, named as they are."""
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
