"""A disk that fills up in the middle of writing an artifact.

BACKUP_DIR lives on a 2 MiB tmpfs that the test mounts (as root, which the suite is in
CI). Pagila's archive is 3.6 MB uncompressed and about 0.9 MB with zstd, so:
- an uncompressed backup runs out of space mid-artifact;
- a restore over the database takes a compressed safety backup first; a filler file next
  to BACKUP_DIR, on the same tmpfs, leaves it less room than it needs.
The job must fail with a message that says the disk is full and names BACKUP_DIR, leave
nothing behind, leave the protected database as it was, and, once space is freed, the
next backup must work.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.models import Backup, Restore
from tests.faults.helpers import Fault, change_the_database, single_line
from tests.faults.invariants import assert_invariants

DISK_SIZE = "2m"
NO_SPACE = re.compile(r"no space|disk (is )?full|out of (disk )?space|ENOSPC", re.IGNORECASE)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(
            f"cannot mount a {DISK_SIZE} tmpfs on {mountpoint} to simulate a full disk: "
            f"{(mounted.stderr or mounted.stdout).strip()} (the fault suite must run as root, "
            "as it does in CI, or with CAP_SYS_ADMIN)", pytrace=False)
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mountpoint)], capture_output=True)


@pytest.fixture
def backup_dir(small_disk: Path) -> Path:
    return small_disk / "backups"


def fill(disk: Path, leave: int) -> Path:
    """A filler file outside BACKUP_DIR that leaves ``leave`` bytes free on ``disk``."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    assert free > leave, f"only {free} bytes free on the test disk before filling it"
    with filler.open("wb") as handle:
        handle.write(b"\0" * (free - leave))
        handle.flush()
        os.fsync(handle.fileno())
    return filler


def expect_disk_full_message(fault: Fault, what: str, error: str | None) -> None:
    """An operator must read that space ran out, and where: BACKUP_DIR's path."""
    error = error or ""
    fault.expect(NO_SPACE.search(error),
                 f"{what} does not say the disk is full: {single_line(error)!r}")
    fault.expect(str(fault.backup_dir) in error or str(fault.backup_dir.resolve()) in error,
                 f"{what} does not name BACKUP_DIR ({fault.backup_dir}): "
                 f"{single_line(error)!r}")


def test_backup_runs_out_of_space_mid_artifact(fault: Fault) -> None:
    backup_id = fault.post_backup(compress=False)  # 3.6 MB on a 2 MiB disk
    fault.run_worker()
    row = fault.row(Backup, backup_id)
    fault.expect(row.status == "failed",
                 f"a backup bigger than the disk is {row.status}")
    expect_disk_full_message(fault, "the failed backup's error", row.error)
    assert_invariants(fault)  # its next backup is compressed and fits


def test_safety_backup_runs_out_of_space(fault: Fault, small_disk: Path) -> None:
    backup_id = fault.completed_backup()
    change_the_database(fault.protected_url)
    fault.remember_protected()
    filler = fill(small_disk, leave=256 * 1024)  # the safety backup needs about 0.9 MB

    response = fault.restore(backupId=backup_id, confirmDataLoss=True)
    assert response.status_code == 202, response.get_json()
    restore_id = response.get_json()["restoreId"]
    fault.run_worker()

    row = fault.row(Restore, restore_id)
    fault.expect(row.status == "failed",
                 f"the restore whose safety backup did not fit is {row.status}")
    expect_disk_full_message(fault, "the failed restore's error", row.error)
    fault.expect(row.safety_backup_id is not None, "the restore recorded no safety backup")
    if row.safety_backup_id is not None:
        safety = fault.row(Backup, row.safety_backup_id)
        fault.expect(safety.status == "failed",
                     f"the safety backup that did not fit is {safety.status}")
        expect_disk_full_message(fault, "the safety backup's error", safety.error)
    filler.unlink()  # the operator frees space; then the next backup must work
    assert_invariants(fault)
