"""Chains of backups: a full backup and the incrementals that follow it, each holding the
changes committed from where its parent ended to where it ends.

A chain restores only whole: the full, then every incremental in order. It is sound when
each link's parent is the one before it and each incremental starts at the LSN where its
parent ended (no gap, no overlap). It reaches every moment from its full's
``consistent_at`` (nothing later is in the full) to its last incremental's
``covers_until`` (everything until then is in the chain); see pgbackup.manifest.Capture.
A restore to a moment replays the incrementals up to the first that covers it, each only
with the transactions committed at or before the moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise


class ChainError(ValueError):
    """A chain that cannot be restored as asked, in one sentence."""


@dataclass(frozen=True)
class Link:
    backup_id: str
    kind: str  # full or incremental
    parent_id: str | None
    start_lsn: str
    end_lsn: str
    consistent_at: datetime  # aware; see pgbackup.manifest.Capture
    covers_until: datetime


def lsn_value(lsn: str) -> int:
    """``'16/B374D848'`` as a number, to compare positions in the WAL."""
    high, _, low = lsn.partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ChainError(f"{lsn!r} is not an LSN") from None


def check_chain(links: Sequence[Link]) -> None:
    """Raise ChainError unless ``links`` (full first) form one unbroken chain."""
    if not links or links[0].kind != "full":
        raise ChainError("a chain starts with a full backup")
    for parent, link in pairwise(links):
        if link.kind != "incremental" or link.parent_id != parent.backup_id:
            raise ChainError(f"backup {link.backup_id} does not follow {parent.backup_id} "
                             "in its chain")
        if lsn_value(link.start_lsn) != lsn_value(parent.end_lsn):
            raise ChainError(
                f"backup {link.backup_id} starts at LSN {link.start_lsn}, but {parent.backup_id}"
                f" ends at {parent.end_lsn}: changes between them would be lost or doubled")


def reachable(links: Sequence[Link]) -> tuple[datetime, datetime]:
    """The first and the last moment a restore of this chain can reach."""
    check_chain(links)
    return links[0].consistent_at, links[-1].covers_until


def links_for(links: Sequence[Link], moment: datetime) -> list[Link]:
    """The links to replay to reach ``moment``: the full and the incrementals up to the
    first that covers it (their transactions committed after ``moment`` are left out)."""
    earliest, latest = reachable(links)
    if not earliest <= moment <= latest:
        raise ChainError(f"{moment.isoformat()} is outside the chain's reach, from "
                         f"{earliest.isoformat()} to {latest.isoformat()}")
    needed = [links[0]]
    for link in links[1:]:
        if needed[-1].covers_until >= moment:
            break
        needed.append(link)
    return needed
