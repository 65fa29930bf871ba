"""Backup identifiers and the storage names derived from them.

An id is the UTC start time with millisecond precision, e.g.
``backup-2024-01-15T10-30-00-000Z``: sortable, unique enough for one server, and a valid
storage name (no colons).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_ID_RE = re.compile(r"^backup-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")
_ID_TIME_FORMAT = "backup-%Y-%m-%dT%H-%M-%S"


def new_backup_id(now: datetime | None = None) -> str:
    """Id for a backup started at ``now`` (default: the current time); ``now`` must be aware."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("new_backup_id needs a timezone-aware datetime")
    now = now.astimezone(UTC)
    return f"{now.strftime(_ID_TIME_FORMAT)}-{now.microsecond // 1000:03d}Z"


def backup_id_time(backup_id: str) -> datetime:
    """The UTC start time encoded in a backup id (millisecond precision)."""
    if not _ID_RE.fullmatch(backup_id):
        raise ValueError(f"not a backup id: {backup_id!r}")
    stamp, millis = backup_id[:-5], backup_id[-4:-1]
    parsed = datetime.strptime(stamp, _ID_TIME_FORMAT).replace(tzinfo=UTC)
    return parsed.replace(microsecond=int(millis) * 1000)


def is_backup_id(value: str) -> bool:
    """True for a well-formed id denoting a real date and time."""
    try:
        backup_id_time(value)
    except (TypeError, ValueError):
        return False
    return True


def artifact_name(backup_id: str, compressed: bool, encrypted: bool = False,
                  kind: str = "full") -> str:
    """``<id>.dump`` (a pg_dump archive), or ``<id>.sql`` for an incremental (captured
    changes as a psql script), plus ``.zst`` when zstd-compressed, plus ``.age`` when
    encrypted."""
    stem = f"{backup_id}.sql" if kind == "incremental" else f"{backup_id}.dump"
    return stem + (".zst" if compressed else "") + (".age" if encrypted else "")


def manifest_name(backup_id: str) -> str:
    return f"{backup_id}.manifest.json"
