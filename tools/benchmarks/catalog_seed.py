"""A catalog of many backups, for the listing under load: rows written straight into the
SQLite catalog (before the web starts), each with a small artifact and manifest file in
BACKUP_DIR so that the listing's presence check passes as it does for real backups."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pgbackup.ids import manifest_name, new_backup_id

ARTIFACT = b"seeded row: not a real backup\n"


def seed_backups(catalog: Path, backup_dir: Path, database: str, count: int) -> None:
    """``count`` completed full backups, one an hour, ending a day ago (so that the real
    ones the benchmark takes are the newest)."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    newest = datetime.now(UTC) - timedelta(days=1)
    rows = [_row(newest - timedelta(hours=hours), database, backup_dir)
            for hours in range(count)]
    with sqlite3.connect(catalog) as connection:
        connection.executemany(
            "INSERT INTO backups (id, target, database, type, status, compress, filename,"
            " size, origin, verification, created_at, started_at, finished_at, duration_ms)"
            " VALUES (?, 'default', ?, 'full', 'completed', 1, ?, ?, 'manual', 'unverified',"
            " ?, ?, ?, 1000)", rows)


def _row(created: datetime, database: str, backup_dir: Path) -> tuple[object, ...]:
    backup_id = new_backup_id(created)
    filename = f"{backup_id}.dump.zst"
    (backup_dir / filename).write_bytes(ARTIFACT)
    (backup_dir / manifest_name(backup_id)).write_text("{}\n")
    when = created.replace(tzinfo=None).isoformat(" ")
    return (backup_id, database, filename, len(ARTIFACT), when, when, when)
