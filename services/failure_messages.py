"""What a failed backup says: a full BACKUP_DIR in words an operator can act on."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from sqlalchemy import select

from services.extensions import db
from services.formatting import filesize
from services.models import Backup


def describe_failure(exc: BaseException, backup_dir: Path | str, needed_bytes: int | None) -> str:
    """``exc`` as a backup's error: a full disk (ENOSPC, also when it caused ``exc``) says
    how much is free in ``backup_dir`` and about how much a backup needs; anything else is
    ``str(exc)`` (its type name when that is empty)."""
    if not any(isinstance(cause, OSError) and cause.errno == errno.ENOSPC
               for cause in _chain(exc)):
        return str(exc) or type(exc).__name__
    try:
        free = filesize(shutil.disk_usage(backup_dir).free)
    except OSError:
        free = "unknown"
    needed = f", about {filesize(needed_bytes)} needed" if needed_bytes else ""
    return (f"no space left in BACKUP_DIR {backup_dir} ({free} free{needed}); delete old "
            "backups or give BACKUP_DIR more space")


def estimated_backup_size(database: str) -> int | None:
    """About what a new backup of ``database`` takes: its newest completed full backup."""
    return db.session.scalar(
        select(Backup.size)
        .where(Backup.database == database, Backup.type == "full",
               Backup.status == "completed", Backup.size.is_not(None))
        .order_by(Backup.finished_at.desc()).limit(1))


def _chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and what caused it, explicitly or while it was being handled."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen
