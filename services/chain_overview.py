"""The protected database's chains as people read them (the dashboard's chains panel):
each link with its size and change counts, the chain's size, time span and the window a
point-in-time restore can reach.

The change counts are in each incremental's manifest, not in the catalog; they are read
from a local copy only, so drawing the panel never reaches a remote destination.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app

from pgbackup import LocalStorage, ObjectStoreError, Storage, read_manifest
from pgbackup.dryrun import Window
from pgbackup.manifest import Capture
from services import copies, restore_chains
from services.errors import CatalogError
from services.models import Backup

NEWEST_CHAINS = 5


@dataclass(frozen=True)
class LinkView:
    """One backup of a chain; ``capture`` is its manifest's, None when no local copy of an
    incremental's manifest could be read (or for a full: its changes are its tables)."""

    backup: Backup
    capture: Capture | None


@dataclass(frozen=True)
class ChainView:
    links: list[LinkView]
    window: Window | None  # None: the chain cannot be restored, see ``problem``
    problem: str | None

    @property
    def full(self) -> Backup:
        return self.links[0].backup

    @property
    def total_size(self) -> int:
        return sum(link.backup.size or 0 for link in self.links)

    @property
    def span(self) -> timedelta:
        """From the full's creation to the newest link's."""
        return self.links[-1].backup.created_at - self.full.created_at


def overview(limit: int = NEWEST_CHAINS) -> list[ChainView]:
    """The ``limit`` newest chains of the protected database, newest first."""
    return [_view(chain) for chain in restore_chains.chains(limit)]


def _view(chain: list[Backup]) -> ChainView:
    links = [LinkView(row, _capture(row)) for row in chain]
    try:
        return ChainView(links, restore_chains.window(chain), None)
    except CatalogError as exc:
        return ChainView(links, None, exc.message)


def _capture(backup: Backup) -> Capture | None:
    if backup.type != "incremental":
        return None
    storage = _local_storage(backup)
    if storage is None:
        return None
    try:
        return read_manifest(storage, backup.id).capture
    except (OSError, ValueError, ObjectStoreError):  # ManifestError is a ValueError
        return None


def _local_storage(backup: Backup) -> Storage | None:
    """Where a local copy of ``backup`` is; BACKUP_DIR for a backup without copy records."""
    if not backup.copies:
        return LocalStorage(current_app.config["BACKUP_DIR"])
    for copy in copies.readable(backup):
        try:
            if copies.destination_of(copy).type == "local":
                return copies.storage_of(copy)
        except CatalogError:  # its destination is gone
            continue
    return None
