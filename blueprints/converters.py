"""URL converters for every id in a path, API and dashboard alike.

An id is checked here, by its shape, before any view runs: a malformed one is a 404 like
any other unknown path, never an error deeper down (RQ's ``Job.fetch`` raises ValueError
on a character outside ``[A-Za-z0-9_-]``; a huge integer overflows in the database).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import BaseConverter

# The time stamp of pgbackup.ids, shared by backup and restore ids.
STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{3}Z"


class CatalogIdConverter(BaseConverter):
    """``<id:...>``: a catalog row id. Digits beyond a PostgreSQL integer name no row, so
    they become 0 (a 404 from the view) instead of an overflow in the database."""

    regex = r"\d{1,40}"

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number <= 2**31 - 1 else 0

    def to_url(self, value: Any) -> str:
        return str(int(value))


class BackupIdConverter(BaseConverter):
    """``<backup_id:...>``: ``backup-2024-01-15T10-30-00-000Z``. A well-formed id that names
    no backup (or no real time) is the view's 404, from the catalog."""

    regex = f"backup-{STAMP}"


class RestoreIdConverter(BaseConverter):
    """``<restore_id:...>``: ``restore-`` and a backup id's time (restores._new_restore_id)."""

    regex = f"restore-{STAMP}"


class JobIdConverter(BaseConverter):
    """``<job_id:...>``: an RQ job id, in the characters RQ allows. Jobs are named after
    their backup or restore, ``verify-<level>-<backup id>-<hex>``, ``delivery-<n>``,
    ``schedule-<n>-<slot>``, ``retention-cleanup-<slot>``, ``alerts-...``."""

    regex = r"[A-Za-z0-9_-]{1,128}"


CONVERTERS: dict[str, type[BaseConverter]] = {
    "id": CatalogIdConverter,
    "backup_id": BackupIdConverter,
    "restore_id": RestoreIdConverter,
    "job_id": JobIdConverter,
}


def register_converters(app: Flask) -> None:
    app.url_map.converters.update(CONVERTERS)
