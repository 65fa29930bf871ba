"""Restore a backup into a database of its own and check it against the manifest.

Every restore path goes through :func:`restore_checked`: a verification or a rehearsal
(into a scratch database that is always dropped), a restore into a new database, and a
restore over the live database (into a replacement that is swapped in only once it
matches). "Matches" means every table's exact row count and content checksum equal what
the manifest recorded in the dump's own snapshot.

Roles the archive needs (owners, grantees) that the target server lacks: asked to, the
restore first creates them from the backup's saved roles (:mod:`pgbackup.globals`);
otherwise it runs with ``--no-owner --no-privileges``, so objects belong to the restoring
user and GRANTs are skipped, and the report names the roles (``skipped_roles``).

A restore that keeps its database (into a new one, over the live one) also gives it the
saved database settings and grants, which the archive lacks.
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
from pgbackup.globals import GlobalsError, SavedGlobals, read_globals
from pgbackup.globals_apply import (
    RolesCreated,
    SettingsApplied,
    apply_database_settings,
    create_roles,
)
from pgbackup.manifest import Manifest, TableInfo
from pgbackup.restore import (
    ProgressCallback,
    RestoreError,
    RestoreOutcome,
    restore_into_new_database,
)
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
    roles_created: RolesCreated | None = None
    settings: SettingsApplied | None = None  # None: not asked for, or none saved
    settings_missing: bool = False  # asked for, but the backup saved none

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
        return [*skipped, *self._globals_warnings(), *self.outcome.warnings]

    def _globals_warnings(self) -> list[str]:
        warnings = []
        if self.roles_created and self.roles_created.left_out:
            warnings.append("role memberships not restored: "
                            + "; ".join(self.roles_created.left_out))
        if self.settings and (self.settings.failed or self.settings.skipped):
            warnings.append("database settings not applied: "
                            + "; ".join([*self.settings.failed, *self.settings.skipped]))
        if self.settings_missing:
            warnings.append("the backup saved no database settings and grants (taken before "
                            "they were saved): set them again by hand")
        return warnings


def restore_checked(
    server: ConnectionInfo, name: str, storage: Storage, manifest: Manifest, *,
    like: str | None = None, progress: ProgressCallback | None = None,
    identities: Sequence[Identity] | None = None, create_missing_roles: bool = False,
    settings_as: str | None = None, settings_comment: bool = True,
) -> RecoveryReport:
    """Restore into the new database ``name`` and compare it with the manifest.

    The database stays (the caller decides what a mismatch means) unless the restore or
    the comparison fails, in which case it is dropped and the error re-raised. An
    encrypted backup needs ``identities`` holding one of its keys.

    ``create_missing_roles`` first creates the roles that the archive and the database's
    grants and settings need and the server lacks, from the backup's saved roles
    (RestoreError if it saved none). ``settings_as``, the name the database is about to
    get, gives it the saved database settings and grants (its comment too with
    ``settings_comment``) once it matches.
    """
    toc = read_toc(storage, manifest, identities=identities)
    wanted = create_missing_roles or settings_as is not None
    saved = _saved(storage, manifest, identities, create_missing_roles) if wanted else None
    created = (create_roles(server, saved, toc.roles() | saved.database.roles())
               if saved and create_missing_roles else None)
    skipped = missing_roles(server, toc.roles())
    outcome = restore_into_new_database(
        server, name, storage, manifest, like=like,
        no_owner=bool(skipped), no_acl=bool(skipped), progress=progress, identities=identities,
    )
    try:
        checks = compare_tables(manifest.tables, describe_database(server.for_database(name)))
        settings = apply_database_settings(
            server, name, saved.database, shown_as=settings_as, comment=settings_comment,
        ) if saved and settings_as else None
    except BaseException:
        drop_database(server, name)
        raise
    return RecoveryReport(name, outcome, checks, skipped, created, settings,
                          settings_missing=bool(settings_as) and saved is None)


def _saved(storage: Storage, manifest: Manifest, identities: Sequence[Identity] | None,
           required: bool) -> SavedGlobals | None:
    """The backup's saved globals; None for a backup taken before they were saved, unless
    they are ``required``. Saved ones that cannot be read fail the restore."""
    if manifest.globals is None and not required:
        return None
    try:
        return read_globals(storage, manifest, identities)
    except GlobalsError as exc:
        raise RestoreError(f"cannot restore the saved roles and settings: {exc}") from None


def scratch_name(purpose: str) -> str:
    """A fresh name for a throwaway database, e.g. ``pgbackup_verify_1a2b3c4d``."""
    return f"pgbackup_{purpose}_{secrets.token_hex(4)}"


@contextmanager
def scratch_restore(
    server: ConnectionInfo, storage: Storage, manifest: Manifest, name: str,
    progress: ProgressCallback | None = None, identities: Sequence[Identity] | None = None,
    create_missing_roles: bool = False,
) -> Iterator[RecoveryReport]:
    """restore_checked into the throwaway database ``name`` (see :func:`scratch_name`),
    dropped afterwards, always."""
    report = restore_checked(
        server, name, storage, manifest, progress=progress, identities=identities,
        create_missing_roles=create_missing_roles,
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
