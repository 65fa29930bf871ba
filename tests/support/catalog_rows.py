"""Backups written straight into the catalog, as many as a test needs, in one statement."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert

START = datetime(2024, 1, 15, 12, 0, 0)


def backup_id_at(moment: datetime) -> str:
    return f"backup-{moment:%Y-%m-%dT%H-%M-%S}-{moment.microsecond // 1000:03d}Z"


def add_backups(count: int, first: int = 0, **fields) -> list[str]:
    """``count`` completed full backups (``fields`` change them), one a minute back from
    START (the ``first``-th onwards), committed in the current app context; returns their
    ids, newest first."""
    from services.extensions import db
    from services.models import Backup

    rows = []
    for number in range(first, first + count):
        created = START - timedelta(minutes=number)
        backup_id = backup_id_at(created)
        rows.append({"id": backup_id, "database": "shop", "type": "full",
                     "status": "completed", "compress": True, "origin": "manual",
                     "filename": f"{backup_id}.dump.zst", "size": 1000 + number,
                     "verification": "valid", "created_at": created,
                     "finished_at": created + timedelta(seconds=2), **fields})
    db.session.execute(insert(Backup), rows)
    db.session.commit()
    return [row["id"] for row in rows]
