"""Restore a backup into a database of its own and check it against the manifest.

Every restore path goes through :func:`restore_checked`: a verification or a rehearsal
(into a scratch database that is always dropped), a restore into a new database, and a
restore over the live database (into a replacement that is swapped in only once it
matches). "Matches" means every table's exact row count and content checksum equal what
the manifest recorded in the dump's own snapshot.

Roles the archive needs (owners, grantees) that the target server lacks: the restore then
runs with ``--no-owner --no-privileges``, so objects belong to the restoring user and
GRANTs are skipped, and the report names the roles (``skipped_roles``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from pgbackup.connection import ConnectionInfo
from pgbackup.dbadmin import drop_database, maintenance_connection
from pgbackup.encryption import Identity
from pgbackup.manifest import Manifest, TableInfo
from pgbackup.restore import ProgressCallback, RestoreOutcome, restore_into_new_database
from pgbackup.storage import Storage
from pgbackup.tablestats import table_stats
from pgbackup.toc import read_toc
from pgbackup.verify import Check, compare_tables


@dataclass(frozen=True)
class RecoveryReport:
    database: str
    outcome: RestoreOutcome
    checks: list[Check]
    skipped_roles: list[str]

    @property
    def matches(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def restore_check(self) -> Check:
        """The restore itself, as one check among the table comparisons."""
        return Check("test-restore", True,
                     f"{self.outcome.items_total} archive items restored into "
                     f"{self.database} in {self.outcome.duration_ms} ms")

    @property
    def warnings(self) -> list[str]:
        skipped = (
            [f"roles missing on the server, restored without owners and grants: "
             f"{', '.join(self.skipped_roles)}"] if self.skipped_roles else []
        )
        return [*skipped, *self.outcome.warnings]


def restore_checked(
    server: ConnectionInfo, name: str, storage: Storage, manifest: Manifest, *,
    like: str | None = None, progress: ProgressCallback | None = None,
    identities: Sequence[Identity] | None = None,
) -> RecoveryReport:
    """Restore into the new database ``name`` and compare it with the manifest.

    The database stays (the caller decides what a mismatch means) unless the restore or
    the comparison fails, in which case it is dropped and the error re-raised. An
    encrypted backup needs ``identities`` holding one of its keys.
    """
    toc = read_toc(storage, manifest, identities=identities)
    skipped = missing_roles(server, toc.roles())
    outcome = restore_into_new_database(
        server, name, storage, manifest, like=like,
        no_owner=bool(skipped), no_acl=bool(skipped), progress=progress, identities=identities,
    )
    try:
        checks = compare_tables(manifest.tables, describe_database(server.for_database(name)))
    except BaseException:
        drop_database(server, name)
        raise
    return RecoveryReport(name, outcome, checks, skipped)


def scratch_name(purpose: str) -> str:
    """A fresh name for a throwaway database, e.g. ``pgbackup_verify_1a2b3c4d``."""
    return f"pgbackup_{purpose}_{secrets.token_hex(4)}"


@contextmanager
def scratch_restore(
    server: ConnectionInfo, storage: Storage, manifest: Manifest, name: str,
    progress: ProgressCallback | None = None, identities: Sequence[Identity] | None = None,
) -> Iterator[RecoveryReport]:
    """restore_checked into the throwaway database ``name`` (see :func:`scratch_name`),
    dropped afterwards, always."""
    report = restore_checked(
        server, name, storage, manifest, progress=progress, identities=identities
    )
    try:
        yield report
    finally:
        drop_database(server, name)


def describe_database(conn: ConnectionInfo) -> list[TableInfo]:
    """Row counts and content checksums of every table, computed as at backup time."""
    with psycopg.connect(conn.conninfo, autocommit=True) as pg:
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return table_stats(pg, count_rows=True, checksums=True)


def missing_roles(server: ConnectionInfo, roles: Iterable[str]) -> list[str]:
    """The roles among ``roles`` that do not exist on ``server``."""
    wanted = sorted(set(roles))
    if not wanted:
        return []
    with maintenance_connection(server) as pg:
        present = {row[0] for row in pg.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [wanted])}
    return [role for role in wanted if role not in present]
