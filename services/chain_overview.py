"""The protected database's chains as people read them (the dashboard's chains panel):
each backup with its size and change counts, the chain's size, time span and the window a
point-in-time restore can reach; from the catalog alone (no manifest is read).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pgbackup.dryrun import Window
from services import restore_chains
from services.errors import CatalogError
from services.models import Backup

NEWEST_CHAINS = 5


@dataclass(frozen=True)
class ChainView:
    links: list[Backup]
    window: Window | None  # None: the chain cannot be restored, see ``problem``
    problem: str | None

    @property
    def full(self) -> Backup:
        return self.links[0]

    @property
    def total_size(self) -> int:
        return sum(link.size or 0 for link in self.links)

    @property
    def span(self) -> timedelta:
        """From the full's creation to the newest link's."""
        return self.links[-1].created_at - self.full.created_at


def overview(limit: int = NEWEST_CHAINS) -> list[ChainView]:
    """The ``limit`` newest chains of the protected database, newest first."""
    return [_view(chain) for chain in restore_chains.chains(limit)]


def _view(chain: list[Backup]) -> ChainView:
    try:
        return ChainView(chain, restore_chains.window(chain), None)
    except CatalogError as exc:
        return ChainView(chain, None, exc.message)
