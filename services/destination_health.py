"""How each destination is doing, from its copies in the catalog: when it last stored a
copy, its last error, how many copies failed in a row since (the alert's trigger), and
what it holds. Read by the destinations' JSON, the metrics and the alerts alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from services.extensions import db
from services.models import BackupCopy

FAILED = ("failed", "retrying")  # a write was tried and did not store the copy


@dataclass(frozen=True)
class DestinationHealth:
    destination: str
    last_good_at: datetime | None  # the newest copy stored there
    last_error: str | None  # of the newest failed write, whenever it was
    last_error_at: datetime | None
    consecutive_failures: int  # copies that failed since the newest one stored
    stored_copies: int
    bytes_stored: int

    @property
    def failing(self) -> bool:
        """Whether the latest write there failed."""
        return self.consecutive_failures > 0


def health_of(names: Iterable[str]) -> dict[str, DestinationHealth]:
    """The health of each destination in ``names`` (one without copies: all empty)."""
    stored = {name: (count, size, last) for name, count, size, last in db.session.execute(
        select(BackupCopy.destination, func.count(), func.coalesce(func.sum(BackupCopy.size), 0),
               func.max(BackupCopy.stored_at))
        .where(BackupCopy.status == "stored").group_by(BackupCopy.destination))}
    result = {}
    for name in names:
        count, size, last_good = stored.get(name, (0, 0, None))
        error, error_at = _last_failure(name)
        result[name] = DestinationHealth(name, last_good, error, error_at,
                                         _failures_since(name, last_good), count, int(size or 0))
    return result


def _last_failure(name: str) -> tuple[str | None, datetime | None]:
    row = db.session.execute(
        select(BackupCopy.error, BackupCopy.attempted_at)
        .where(BackupCopy.destination == name, BackupCopy.status.in_(FAILED),
               BackupCopy.attempted_at.is_not(None))
        .order_by(BackupCopy.attempted_at.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (None, None)


def _failures_since(name: str, last_good: datetime | None) -> int:
    query = select(func.count()).select_from(BackupCopy).where(
        BackupCopy.destination == name, BackupCopy.status.in_(FAILED),
        BackupCopy.attempted_at.is_not(None))
    if last_good is not None:
        query = query.where(BackupCopy.attempted_at > last_good)
    return db.session.scalar(query) or 0
