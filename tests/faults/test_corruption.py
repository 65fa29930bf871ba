"""A corrupted artifact, a corrupted manifest, a corrupted catalog row.

Each corruption is made to a completed backup that its automatic integrity check found
valid. Then, in this order:
1. a restore into a new database and a restore over the protected database are asked for
   (before anything re-checked the backup, so the restore's own check must catch it):
   each is refused up front (4xx) or its job fails naming the integrity problem; no
   database is created and the protected database is untouched;
2. an integrity and a restore-level verification must both say ``corrupted``.
The catalog row is what the dashboard, the API and downloads trust: a row whose sha256,
size or filename no longer describes the stored backup is as corrupt as a flipped byte.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from services.extensions import db
from services.models import Backup, Restore
from tests.faults.helpers import Fault, databases, new_database_name, single_line
from tests.faults.invariants import assert_invariants


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def set_catalog(fault: Fault, backup_id: str, **fields: object) -> None:
    with fault.app.app_context():
        row = db.session.get(Backup, backup_id)
        for key, value in fields.items():
            setattr(row, key, value)
        db.session.commit()


def artifact_byte(fault: Fault, backup: Backup) -> None:
    path = fault.backup_dir / backup.filename
    flip_byte(path, path.stat().st_size // 2)


def manifest_byte(fault: Fault, backup: Backup) -> None:
    path = fault.backup_dir / f"{backup.id}.manifest.json"
    # inside the artifact's hex digest: the last "sha256" key (the globals file's comes first)
    flip_byte(path, path.read_bytes().rindex(b'"sha256"') + 15)


def catalog_sha256(fault: Fault, backup: Backup) -> None:
    set_catalog(fault, backup.id, sha256="0" * 64)


def catalog_size(fault: Fault, backup: Backup) -> None:
    set_catalog(fault, backup.id, size=backup.size + 4096)


def catalog_filename(fault: Fault, backup: Backup) -> None:
    """The row points at another backup's artifact, which is whole and valid."""
    other = fault.row(Backup, fault.completed_backup())
    set_catalog(fault, backup.id, filename=other.filename)


CORRUPTIONS: dict[str, Callable[[Fault, Backup], None]] = {
    "artifact-byte": artifact_byte,
    "manifest-byte": manifest_byte,
    "catalog-sha256": catalog_sha256,
    "catalog-size": catalog_size,
    "catalog-filename": catalog_filename,
}


# What a refusal of a corrupted backup must be about (not any 4xx, not any failure).
ABOUT_CORRUPTION = ("integrity", "corrupt", "missing", "catalog row")


def expect_refused(fault: Fault, what: str, response) -> None:
    """Refused up front with a 4xx, or accepted and then failed by its job, either way
    saying why: the backup is not what was stored."""
    if response.status_code != 202:
        message = (response.get_json() or {}).get("error", {}).get("message", "")
        fault.expect(400 <= response.status_code < 500
                     and any(word in message for word in ABOUT_CORRUPTION),
                     f"{what} of a corrupted backup got {response.status_code}: {message}")
        return
    restore_id = response.get_json()["restoreId"]
    fault.run_worker()
    row = fault.row(Restore, restore_id)
    fault.expect(row.status == "failed"
                 and any(word in (row.error or "") for word in ABOUT_CORRUPTION),
                 f"{what} of a corrupted backup is {row.status}: {single_line(row.error)}")


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupted_backup_is_invalid_and_never_restored(fault: Fault, corruption: str) -> None:
    backup_id = fault.completed_backup()
    backup = fault.row(Backup, backup_id)
    assert backup.verification == "valid", "the backup was not valid before the corruption"
    CORRUPTIONS[corruption](fault, backup)

    target = new_database_name()
    expect_refused(fault, "a restore into a new database",
                   fault.restore(backupId=backup_id, targetDatabase=target))
    expect_refused(fault, "a restore over the protected database",
                   fault.restore(backupId=backup_id, confirmDataLoss=True))
    fault.expect(databases(fault.pg_server) == fault.known_databases,
                 "a refused restore of a corrupted backup left a database: "
                 f"{sorted(databases(fault.pg_server) - fault.known_databases)}")

    for level in ("integrity", "restore"):
        response = fault.api.post("/api/system/backup/verify",
                                  json={"backupId": backup_id, "level": level})
        if response.status_code != 202:  # refusing to verify is not saying "invalid"
            fault.expect(False, f"{level} verification was refused: "
                         f"{response.status_code} {response.get_json()}")
            continue
        fault.run_worker()
        row = fault.row(Backup, backup_id)
        result = row.verification_result or {}
        fault.expect(row.verification == "corrupted" and result.get("isValid") is False,
                     f"{level} verification says {row.verification} "
                     f"(checks: {single_line(str(result.get('checks')))[:200]})")
    assert_invariants(fault)
