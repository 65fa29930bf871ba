"""A backup that fails on a full BACKUP_DIR says how much is free and about how much it
needs; other failures keep their own message."""

from __future__ import annotations

import errno
import re
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from pgbackup import BackupError, new_backup_id
from services.extensions import db
from services.failure_messages import describe_failure, estimated_backup_size
from services.models import Backup, utcnow

SIZE = r"\d+(\.\d)? (B|KiB|MiB|GiB|TiB)"


def disk_full() -> OSError:
    """The real error of a write to a full device."""
    with pytest.raises(OSError) as caught, open("/dev/full", "wb") as device:
        device.write(b"x")
        device.flush()
    assert caught.value.errno == errno.ENOSPC
    return caught.value


def raised_from(cause: BaseException) -> BackupError:
    try:
        raise BackupError("pg_dump failed") from cause
    except BackupError as exc:
        return exc


@pytest.mark.parametrize("exc", [disk_full(), raised_from(disk_full())],
                         ids=["ENOSPC", "caused-by-ENOSPC"])
def test_a_full_disk_says_what_is_free_and_about_what_is_needed(tmp_path: Path, exc):
    message = describe_failure(exc, tmp_path, 5 * 1024**2)
    assert re.fullmatch(
        rf"no space left in BACKUP_DIR {re.escape(str(tmp_path))} \({SIZE} free, about 5.0 MiB "
        r"needed\); delete old backups or give BACKUP_DIR more space", message), message
    assert re.search(rf"\({SIZE} free\);", describe_failure(exc, tmp_path, None))

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


@pytest.mark.parametrize(("exc", "message"), [
    (OSError(errno.EACCES, "Permission denied"), "[Errno 13] Permission denied"),
    (BackupError("pg_dump failed with exit status 1"), "pg_dump failed with exit status 1"),
    (RuntimeError(), "RuntimeError"),
])
def test_other_failures_keep_their_message(tmp_path: Path, exc, message):
    assert describe_failure(exc, tmp_path, 1024) == message


def test_needed_is_the_newest_completed_full_backup_of_the_database(app):
    now = utcnow()
    rows = [("pagila", "full", "completed", 100, 3), ("pagila", "full", "completed", 200, 2),
            ("pagila", "full", "failed", 300, 1), ("pagila", "schema-only", "completed", 400, 1),
            ("other", "full", "completed", 500, 1)]
    with app.app_context():
        assert estimated_backup_size("pagila") is None
        for database, kind, status, size, hours_ago in rows:
            finished = now - timedelta(hours=hours_ago, seconds=size)  # ids differ
            db.session.add(Backup(id=new_backup_id(finished.replace(tzinfo=UTC)),
                                  database=database, type=kind, status=status, size=size,
                                  finished_at=finished))
        db.session.commit()
        assert estimated_backup_size("pagila") == 200
