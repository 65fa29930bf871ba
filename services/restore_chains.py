"""Which chain a restore reads, from the catalog: a backup's chain (its full and every
incremental up to it, by ``parent_id``), or the newest chain whose reach holds a moment.

A chain reaches from its full's ``consistent_at`` to its last incremental's
``covers_until`` (pgbackup.chains); the catalog keeps both on each row
(services.capture.record), so choosing a chain reads no manifest.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

from pgbackup import Manifest, Storage, read_manifest
from pgbackup.chains import ChainError, Link, links_for
from pgbackup.dryrun import Window, window_of
from services import capture_health, copies
from services.backups import completed_backup
from services.errors import CatalogError
from services.extensions import db
from services.json_shapes import iso
from services.models import Backup

_NO_CHAIN = "nothing (no chain yet: take a full backup with change capture on)"


def is_chained(backup: Backup, moment: datetime | None) -> bool:
    """Whether restoring ``backup`` (to ``moment``) restores a chain."""
    return backup.type == "incremental" or moment is not None


def chain_to(backup: Backup) -> list[Backup]:
    """The full and the incrementals up to ``backup``, in order; each completed and with
    its files in place (CatalogError otherwise)."""
    chain = [backup]
    while chain[0].parent_id is not None:
        parent = db.session.get(Backup, chain[0].parent_id)
        if parent is None:
            raise CatalogError(f"backup {backup.id} cannot be restored: {chain[0].id} "
                               f"continues {chain[0].parent_id}, which no longer exists",
                               status=409, code="chain_broken")
        chain.insert(0, completed_backup(parent.id))
    return chain


def whole_chain(backup: Backup) -> list[Backup]:
    """The chain ``backup`` belongs to, from its full to its newest completed incremental."""
    chain = chain_to(backup)
    while (child := _next_link(chain[-1])) is not None:
        chain.append(child)
    return chain


def _next_link(backup: Backup) -> Backup | None:
    return db.session.scalars(
        select(Backup).where(Backup.parent_id == backup.id, Backup.status == "completed",
                             Backup.type == "incremental")
        .order_by(Backup.created_at, Backup.id)).first()


def links_of(chain: list[Backup]) -> list[Link]:
    """The engine's view of the chain, from the rows' capture columns."""
    if chain[0].consistent_at is None:
        raise CatalogError(f"backup {chain[0].id} started no chain (no change capture): "
                           "it cannot be restored to a point in time",
                           status=409, code="point_in_time_unreachable")
    return [Link(row.id, row.type, row.parent_id, row.start_lsn or "", row.end_lsn or "",
                 _aware(row.consistent_at), _aware(row.covers_until)) for row in chain]


def window(chain: list[Backup]) -> Window:
    try:
        return window_of(links_of(chain))
    except ChainError as exc:
        raise CatalogError(f"the chain of backup {chain[0].id} cannot be restored: {exc}",
                           status=409, code="chain_broken") from None


def chain_for_moment(moment: datetime, backup: Backup | None = None) -> list[Backup]:
    """The links a restore to ``moment`` (aware) reads: of ``backup``'s chain when given,
    else of the newest chain of the protected database that reaches it; cut after the
    first link that covers it. A 409 names the reachable windows otherwise."""
    candidates = [whole_chain(backup)] if backup is not None else chains()
    # Searching, a broken chain is passed over; the chain asked for must be sound.
    reaches = [(chain, window(chain) if backup is not None else _sound_window(chain))
               for chain in candidates]
    for chain, reach in reaches:
        if reach is not None and reach.earliest <= moment <= reach.latest:
            needed = chain[:len(links_for(links_of(chain), moment))]
            return [completed_backup(row.id) for row in needed]
    windows = "; ".join(f"{iso(reach.earliest)} to {iso(reach.latest)} (the chain of "
                        f"{chain[0].id})" for chain, reach in reaches if reach is not None)
    where = f"the chain of backup {backup.id}" if backup is not None else "every chain"
    raise CatalogError(f"{iso(moment)} is outside the reach of {where}; reachable: "
                       f"{windows or _no_chain()}", status=409,
                       code="point_in_time_unreachable")


def _no_chain() -> str:
    """Why no chain reaches anything, with the fix when change capture cannot run."""
    problem = capture_health.capture_problem()
    return _NO_CHAIN + (f". {problem.problem} Fix: {problem.fix}" if problem else "")


def _sound_window(chain: list[Backup]) -> Window | None:
    try:
        return window(chain)
    except CatalogError:
        return None


def chains(limit: int | None = None) -> list[list[Backup]]:
    """The protected database's chains (each its full and completed incrementals, in
    order), newest first; the ``limit`` newest when given."""
    fulls = db.session.scalars(
        select(Backup).where(Backup.database == current_app.config["TARGET_DATABASE"],
                             Backup.type == "full", Backup.status == "completed",
                             Backup.consistent_at.is_not(None))
        .order_by(Backup.created_at.desc(), Backup.id.desc()).limit(limit))
    return [whole_chain(full) for full in fulls]


def read_links(chain: list[Backup]) -> list[tuple[copies.Source, Manifest]]:
    """Each link's first readable copy and its manifest."""
    sources = [copies.source(backup) for backup in chain]
    return [(source, read_manifest(source.storage, backup.id))
            for source, backup in zip(sources, chain, strict=True)]


def storages(links: list[tuple[copies.Source, Manifest]]) -> list[tuple[Storage, Manifest]]:
    return [(source.storage, manifest) for source, manifest in links]


def _aware(value: datetime | None) -> datetime:
    if value is None:
        raise CatalogError("a backup of the chain has no recorded capture times",
                           status=409, code="chain_broken")
    return value.replace(tzinfo=UTC)
