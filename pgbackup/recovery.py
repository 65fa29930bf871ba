"""Restore a backup into a database of its own and check it against the manifest.

Every restore path goes through :func:`restore_checked` (a full or schema-only backup) or
:func:`restore_chain_checked` (a chain: its full, then its incrementals, to the end or to
a moment): a verification or a rehearsal (into a scratch database that is always
dropped), a restore into a new database, and a restore over the live database (into a
replacement that is swapped in only once it matches). "Matches" means every table's exact
row count and content checksum equal what the manifest recorded in the backup's own
snapshot: for a chain, the manifest of the last link replayed, when the replay reached its
end. A point-in-time restore that stopped inside a link has no recorded state to compare
with, and says so (the artifacts' SHA-256 and psql's applying every statement are then
the checks).

Roles the archive needs (owners, grantees) that the target server lacks: asked to, the
restore first creates them from the backup's saved roles (:mod:`pgbackup.globals`);
otherwise it runs with ``--no-owner --no-privileges``, so objects belong to the restoring
user and GRANTs are skipped, and the report names the roles (``skipped_roles``).

A restore that keeps its database (into a new one, over the live one) also gives it the
saved database settings and grants, which the archive lacks.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

import psycopg

from pgbackup.chain_restore import ChainRestoreReport, ReplayReport, restore_chain
from pgbackup.connection import ConnectionInfo
from pgbackup.copydigest import (
    ArchiveFormatError,
    TableDigest,
    UnsupportedArchive,
    dump_digests,
    is_stream_checksum,
)
from pgbackup.dbadmin import drop_database, maintenance_connection
from pgbackup.encryption import Identity
from pgbackup.errors import BackupError
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
    new_database,
    restore_archive,
)
from pgbackup.restore_jobs import Parallelism
from pgbackup.storage import Storage
from pgbackup.tablestats import table_stats
from pgbackup.toc import read_toc
from pgbackup.verify import NOT_COMPARED, Check, compare_tables

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ChainReplay:
    """What a chain restore replayed after its ``full``: the incrementals (backup id -> its
    replay, in chain order) to ``until`` (None: the chain's end). ``compared_with`` is the
    backup whose manifest the tables were compared with, None when the replay stopped
    inside a link (no state was recorded there); ``kept_previous`` lists the tables that
    link copied whole (no usable key), which kept the previous link's state."""

    full: str
    until: datetime | None
    replayed: dict[str, ReplayReport]
    compared_with: str | None
    kept_previous: list[str] = field(default_factory=list)

    @property
    def transactions(self) -> int:
        return sum(replay.transactions_applied for replay in self.replayed.values())

    @property
    def last_commit(self) -> datetime | None:
        """The commit time of the last transaction applied."""
        commits = [replay.last_commit_applied for replay in self.replayed.values()
                   if replay.last_commit_applied is not None]
        return commits[-1] if commits else None


@dataclass(frozen=True)
class RecoveryReport:
    database: str
    outcome: RestoreOutcome  # the full's pg_restore
    checks: list[Check]
    skipped_roles: list[str]
    roles_created: RolesCreated | None = None
    settings: SettingsApplied | None = None  # None: not asked for, or none saved
    settings_missing: bool = False  # asked for, but the backup saved none
    chain: ChainReplay | None = None  # None: a single backup, no chain

    @property
    def matches(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def restore_check(self) -> Check:
        """The restore itself, as one check among the table comparisons."""
        detail = (f"{self.outcome.items_total} archive items restored into "
                  f"{self.database} in {self.outcome.duration_ms} ms")
        if self.chain is not None:
            last = self.chain.last_commit
            detail += (f", then {len(self.chain.replayed)} incremental(s) replayed "
                       f"({self.chain.transactions} transactions"
                       + (f", the last committed at {last.isoformat()})" if last else ")"))
        return Check("test-restore", True, detail)

    @property
    def warnings(self) -> list[str]:
        skipped = (
            [f"roles missing on the server, restored without owners and grants: "
             f"{', '.join(self.skipped_roles)}"] if self.skipped_roles else []
        )
        uncompared = [check.name.removeprefix("table ") for check in self.checks
                      if NOT_COMPARED in check.detail]
        content = ([f"rows compared, content not (a pg_dump newer than the stream parser): "
                    f"{', '.join(uncompared)}"] if uncompared else [])
        return [*skipped, *content, *self._globals_warnings(), *self.outcome.warnings]

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
        if self.chain and self.chain.kept_previous:
            warnings.append("tables without a usable key keep their state at the end of the "
                            "previous backup of the chain (the moment falls inside a backup, "
                            "which copied them whole): "
                            + ", ".join(self.chain.kept_previous))
        return warnings


@dataclass(frozen=True)
class _Restored:
    """What a restore put into the new database: ``expected`` is the state recorded for
    it, None when there is none (a moment inside a link of a chain)."""

    outcome: RestoreOutcome
    expected: list[TableInfo] | None
    chain: ChainReplay | None = None


# Restores into the new database; the flag: without owners and grants (roles missing).
_Restore = Callable[[ConnectionInfo, bool], _Restored]


def restore_checked(
    server: ConnectionInfo, name: str, storage: Storage, manifest: Manifest, *,
    like: str | None = None, progress: ProgressCallback | None = None,
    identities: Sequence[Identity] | None = None, create_missing_roles: bool = False,
    settings_as: str | None = None, settings_comment: bool = True,
    parallel: Parallelism | None = None,
) -> RecoveryReport:
    """Restore into the new database ``name`` and compare it with the manifest.

    The database stays (the caller decides what a mismatch means) unless the restore or
    the comparison fails, in which case it is dropped and the error re-raised. An
    encrypted backup needs ``identities`` holding one of its keys.

    ``create_missing_roles`` first creates the roles that the archive and the database's
    grants and settings need and the server lacks, from the backup's saved roles
    (RestoreError if it saved none). ``settings_as``, the name the database is about to
    get, gives it the saved database settings and grants (its comment too with
    ``settings_comment``) once it matches. ``parallel`` allows ``pg_restore -j``
    (:mod:`pgbackup.restore_jobs`): the new database is dropped if the restore fails.
    """
    def restore(target: ConnectionInfo, portable: bool) -> _Restored:
        return _Restored(restore_archive(
            target, storage, manifest, no_owner=portable, no_acl=portable, progress=progress,
            identities=identities, parallel=parallel), manifest.tables)

    return _restored_and_checked(
        server, name, storage, manifest, restore, like=like, identities=identities,
        create_missing_roles=create_missing_roles, settings_as=settings_as,
        settings_comment=settings_comment)


def restore_chain_checked(
    server: ConnectionInfo, name: str, links: Sequence[tuple[Storage, Manifest]],
    until: datetime | None, *, like: str | None = None,
    progress: ProgressCallback | None = None, identities: Sequence[Identity] | None = None,
    create_missing_roles: bool = False, settings_as: str | None = None,
    settings_comment: bool = True,
) -> RecoveryReport:
    """:func:`restore_checked` for a chain (``links``: the full first, each with the
    storage holding it), restored with :func:`pgbackup.chain_restore.restore_chain` to
    ``until`` (aware; None: the chain's end). Roles and settings come from the full's TOC
    and saved globals. The tables are compared with the manifest of the last link
    replayed when the replay reached its end; a replay that stopped inside a link gets a
    passing ``point-in-time`` check saying no comparison was made, and a warning naming
    the tables that link copied whole. Raises ChainRestoreError or RestoreError."""
    storage, full = links[0]

    def restore(target: ConnectionInfo, portable: bool) -> _Restored:
        return _chain_restored(links, until, restore_chain(
            target, links, identities, until, no_owner=portable, no_acl=portable,
            progress=progress))

    return _restored_and_checked(
        server, name, storage, full, restore, like=like, identities=identities,
        create_missing_roles=create_missing_roles, settings_as=settings_as,
        settings_comment=settings_comment)


def _chain_restored(links: Sequence[tuple[Storage, Manifest]], until: datetime | None,
                    report: ChainRestoreReport) -> _Restored:
    """The state to compare with: the last link replayed's, unless it stopped early."""
    manifests = {manifest.backup_id: manifest for _, manifest in links}
    full = links[0][1]
    last = manifests[next(reversed(report.replayed), full.backup_id)]
    replay = report.replayed.get(last.backup_id)
    stopped = replay is not None and replay.stopped_early
    kept = list(last.capture.tables_copied) if stopped and last.capture else []
    chain = ChainReplay(full.backup_id, until, dict(report.replayed),
                        None if stopped else last.backup_id, kept)
    return _Restored(report.full, None if stopped else last.tables, chain)


def _restored_and_checked(
    server: ConnectionInfo, name: str, storage: Storage, manifest: Manifest,
    restore: _Restore, *, like: str | None, identities: Sequence[Identity] | None,
    create_missing_roles: bool, settings_as: str | None, settings_comment: bool,
) -> RecoveryReport:
    """The roles (from ``manifest``'s TOC and saved globals), the new database, ``restore``
    into it, the comparison and the settings: see :func:`restore_checked`."""
    toc = read_toc(storage, manifest, identities=identities)
    wanted = create_missing_roles or settings_as is not None
    saved = _saved(storage, manifest, identities, create_missing_roles) if wanted else None
    created = (create_roles(server, saved, toc.roles() | saved.database.roles())
               if saved and create_missing_roles else None)
    skipped = missing_roles(server, toc.roles())
    with new_database(server, name, like) as target:
        restored = restore(target, bool(skipped))
    try:
        checks = _checks(server.for_database(name), restored)
        settings = apply_database_settings(
            server, name, saved.database, shown_as=settings_as, comment=settings_comment,
        ) if saved and settings_as else None
    except BaseException:
        drop_database(server, name)
        raise
    return RecoveryReport(name, restored.outcome, checks, skipped, created, settings,
                          settings_missing=bool(settings_as) and saved is None,
                          chain=restored.chain)


def _checks(target: ConnectionInfo, restored: _Restored) -> list[Check]:
    """The table comparison; for a moment inside a link, the one check saying why none
    was made."""
    if restored.expected is not None:
        return compare_tables(restored.expected,
                              describe_database(target, restored.expected))
    assert restored.chain is not None and restored.chain.until is not None
    return [Check("point-in-time", True,
                  f"restored to {restored.chain.until.isoformat()}, a moment inside backup "
                  f"{next(reversed(restored.chain.replayed))}: no state was recorded at that "
                  "moment, so the tables were not compared with a manifest (each artifact "
                  "matched its SHA-256 and every statement replayed without error)")]


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
    create_missing_roles: bool = False, parallel: Parallelism | None = None,
) -> Iterator[RecoveryReport]:
    """restore_checked into the throwaway database ``name`` (see :func:`scratch_name`),
    dropped afterwards, always."""
    with _thrown_away(server, restore_checked(
        server, name, storage, manifest, progress=progress, identities=identities,
        create_missing_roles=create_missing_roles, parallel=parallel,
    )) as report:
        yield report


@contextmanager
def scratch_restore_chain(
    server: ConnectionInfo, links: Sequence[tuple[Storage, Manifest]], name: str,
    until: datetime | None = None, progress: ProgressCallback | None = None,
    identities: Sequence[Identity] | None = None, create_missing_roles: bool = False,
) -> Iterator[RecoveryReport]:
    """restore_chain_checked into the throwaway database ``name``, dropped afterwards,
    always: verifying an incremental, rehearsing a chain's restore."""
    with _thrown_away(server, restore_chain_checked(
        server, name, links, until, progress=progress, identities=identities,
        create_missing_roles=create_missing_roles,
    )) as report:
        yield report


@contextmanager
def _thrown_away(server: ConnectionInfo, report: RecoveryReport) -> Iterator[RecoveryReport]:
    try:
        yield report
    finally:
        drop_database(server, report.database)


def describe_database(conn: ConnectionInfo, expected: Sequence[TableInfo] = (),
                      pg_dump: str = "pg_dump") -> list[TableInfo]:
    """Row counts and content checksums of every table, computed as the ``expected`` ones
    were: a table whose expected checksum is a stream digest is read back with pg_dump
    (pgbackup.copydigest); the others are counted, and their older server-side checksum
    computed, in the database (pgbackup.tablestats: backups taken before stream digests,
    the changed tables of an incremental). Raises RestoreError if pg_dump fails.

    When pg_dump writes an archive version the parser does not know, the stream-digested
    tables are counted only: their checksum is None, which compare_tables reports as not
    compared (a newer pg_dump must not fail a restore whose rows all came back)."""
    streamed = {t.qualified_name for t in expected if is_stream_checksum(t.checksum)}
    summed = {t.qualified_name for t in expected if t.checksum is not None} - streamed
    with psycopg.connect(conn.conninfo, autocommit=True) as pg:
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        listed = table_stats(pg, count_rows=False, checksums=False)
        names = {table.qualified_name for table in listed}
        counted = {t.qualified_name: t for t in [
            *table_stats(pg, count_rows=True, checksums=True, only=summed & names),
            *table_stats(pg, count_rows=True, checksums=False, only=names - streamed - summed),
        ]}
    try:
        digests = dump_digests(conn, pg_dump) if streamed & names else {}
    except UnsupportedArchive as exc:
        log.warning("the restored tables cannot be read back as stream digests (%s): "
                    "they are counted, their content is not compared", exc)
        with psycopg.connect(conn.conninfo) as pg:
            counted |= {t.qualified_name: t for t in
                        table_stats(pg, count_rows=True, checksums=False, only=streamed)}
        digests = {}
    except (BackupError, ArchiveFormatError) as exc:
        raise RestoreError(f"cannot read the restored tables back: {exc}") from None
    return [counted.get(table.qualified_name) or _digested(table, digests) for table in listed]


def _digested(table: TableInfo, digests: dict[tuple[str, str], TableDigest]) -> TableInfo:
    found = digests.get((table.schema, table.name))
    return replace(table, rows=found.rows, checksum=found.checksum) if found else table


def missing_roles(server: ConnectionInfo, roles: Iterable[str]) -> list[str]:
    """The roles among ``roles`` that do not exist on ``server``."""
    wanted = sorted(set(roles))
    if not wanted:
        return []
    with maintenance_connection(server) as pg:
        present = {row[0] for row in pg.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [wanted])}
    return [role for role in wanted if role not in present]
