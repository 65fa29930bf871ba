"""The dry run of a restore: what it would change and whether it can work, changing nothing.

The target server is only read, in one ``REPEATABLE READ, READ ONLY`` transaction of a
session whose ``default_transaction_read_only`` is on; the archive is only listed
(:mod:`pgbackup.toc`). Problems that make the restore impossible are ``errors``; anything
the operator should know before going ahead is a ``warning``.

A chain (:func:`analyze_chain_restore`) gets the analysis of its full, and the chain, its
reachable window and, for a moment, the links replayed to reach it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import psycopg
from psycopg.rows import dict_row

from pgbackup.archive import missing_identities
from pgbackup.chain_restore import ChainRestoreError, chain_links
from pgbackup.chains import ChainError, Link, links_for, reachable
from pgbackup.connection import ConnectionInfo
from pgbackup.encryption import Identity
from pgbackup.globals import (
    GlobalsError,
    SavedGlobals,
    database_statements,
    default_grants,
    read_globals,
)
from pgbackup.manifest import Manifest
from pgbackup.restore import RestoreError, checked_archive_size
from pgbackup.restore_jobs import JobsChoice, Parallelism, choose_jobs, needs_size
from pgbackup.restore_jobs import human_size as _size
from pgbackup.storage import Storage
from pgbackup.tablestats import TableCount, count_tables, table_stats
from pgbackup.toc import Toc, TocError, read_toc

RestoreMode = Literal["overwrite", "new-database"]
MODES: tuple[RestoreMode, ...] = get_args(RestoreMode)

SERVER_DISK_NOTE = (
    "The database server's own free disk space is not visible over SQL and was not checked."
)
NO_PAST_RESTORE = "no past restore to estimate from"

_SCHEMAS_SQL = """
SELECT nspname FROM pg_namespace
WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
ORDER BY 1
"""
# Client sessions only: background workers are not connections anyone would miss.
_CONNECTIONS_SQL = """
SELECT pid, usename AS "user", application_name AS application,
       host(client_addr) AS client_address, state, backend_start
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
ORDER BY backend_start, pid
"""


class DryRunError(RuntimeError):
    """The target server could not be read, or the backup cannot be decrypted without an
    identity. The message never contains a password."""


@dataclass(frozen=True)
class TableRows:
    schema: str
    name: str
    rows: int | None
    partition_of: str | None = None  # a partition: its root's schema.name (TableInfo's)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class BackupSummary:
    id: str
    type: str
    created: datetime
    size: int
    database: str
    server_version: str
    schemas: list[str]
    tables: list[TableRows]
    toc_entries: int | None  # None when the archive's TOC cannot be read


@dataclass(frozen=True)
class TargetSummary:
    database: str
    exists: bool
    server_version: str
    schemas: list[str]
    tables: list[TableRows]  # exact counts; empty unless an existing database is overwritten
    size: int | None  # pg_database_size, None unless an existing database is overwritten


@dataclass(frozen=True)
class TableChange:
    table: str  # schema.name
    rows_before: int | None
    rows_after: int | None
    delta: int | None
    partition_of: str | None = None  # a partition: its root's schema.name


def table_count(tables: Iterable[TableRows | TableChange]) -> TableCount:
    """How many tables these are, partitions counted under their partitioned table."""
    return count_tables(table.partition_of for table in tables)


@dataclass(frozen=True)
class Changes:
    schemas_dropped: list[str]
    schemas_created: list[str]
    dropped: list[TableChange]
    created: list[TableChange]
    replaced: list[TableChange]


@dataclass(frozen=True)
class VersionCheck:
    backup: str
    target: str
    ok: bool
    note: str | None


@dataclass(frozen=True)
class SavedGlobalsCheck:
    """What the backup's saved roles and database settings (pgbackup.globals) would do."""

    file: str
    roles_to_create: list[str]  # missing roles a restore with createRoles creates first
    roles_not_saved: list[str]  # missing roles the backup did not save either
    database_settings: list[str]  # applied to the restored database, as SQL
    settings_skipped: list[str]  # left out, and why (a role missing on the target)


@dataclass(frozen=True)
class Compatibility:
    server_version: VersionCheck
    extensions_required: list[str] | None  # None when the archive's TOC cannot be read
    extensions_missing: list[str] | None
    roles_referenced: list[str] | None
    roles_missing: list[str] | None
    restoring_user: str
    # None: the backup saved no roles and settings (taken before), or its TOC is unreadable
    saved_globals: SavedGlobalsCheck | None = None


@dataclass(frozen=True)
class RestoreTemp:
    """How the restore would run (``jobs`` 1: serial) and, for a parallel one, the
    temporary file it writes: the uncompressed archive, ``bytes`` long, in ``directory``
    (``free_bytes`` free there). ``fits`` False: it falls back to serial."""

    jobs: int
    mode: str  # serial, or parallel (N jobs)
    reason: str
    directory: str | None
    bytes: int | None  # None: not measured (serial whatever the size)
    free_bytes: int | None
    fits: bool | None  # None: no temporary file considered


@dataclass(frozen=True)
class DiskCheck:
    backup_dir_free_bytes: int | None
    safety_backup_bytes: int | None  # estimate; None when no safety backup is taken
    fits: bool | None  # None when unknown or not applicable
    notes: list[str]
    restore_temp: RestoreTemp | None = None  # None: the caller did not ask (a chain)


@dataclass(frozen=True)
class OpenConnection:
    pid: int
    user: str | None
    application: str | None
    client_address: str | None
    state: str | None
    backend_start: datetime | None


@dataclass(frozen=True)
class Estimate:
    seconds: float | None
    bytes_per_second: float | None
    note: str


@dataclass(frozen=True)
class ChainLink:
    """One backup of the chain a restore uses; ``replayed``: the restore reads it."""

    backup_id: str
    type: str
    created: datetime
    start_lsn: str
    end_lsn: str
    covers_until: datetime
    replayed: bool


@dataclass(frozen=True)
class Window:
    """The moments a chain reaches (its full's consistent_at to its last covers_until), in
    whole milliseconds inside that reach: either end, given back as a moment, is reached."""

    earliest: datetime
    latest: datetime


def window_of(chain: Sequence[Link]) -> Window:
    """The window of a sound chain (ChainError otherwise)."""
    earliest, latest = reachable(chain)
    ceiling = earliest + timedelta(microseconds=-earliest.microsecond % 1000)
    return Window(ceiling, latest.replace(microsecond=latest.microsecond // 1000 * 1000))


@dataclass(frozen=True)
class PointInTime:
    """How a restore reaches ``moment``: ``replayed``, the full first; ``inside``, the
    incremental whose transactions committed after the moment are left out (None when
    the moment is at a link's end); ``tables_at_previous_state``, what ``inside`` copied
    whole (no usable key), which keeps the state at the end of the link before it."""

    moment: datetime
    replayed: list[str]
    inside: str | None
    tables_at_previous_state: list[str]


@dataclass(frozen=True)
class DryRunReport:
    """Data only (times are aware datetimes): the app shapes it as JSON."""

    mode: RestoreMode
    backup: BackupSummary  # of a chain: its full
    target: TargetSummary
    changes: Changes
    compatibility: Compatibility
    disk: DiskCheck
    connections: list[OpenConnection]
    estimate: Estimate
    warnings: list[str]
    errors: list[str]
    chain: list[ChainLink] | None = None  # None: a single backup
    window: Window | None = None
    point_in_time: PointInTime | None = None

    @property
    def can_restore(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _DatabaseFacts:
    """The database an overwrite replaces, as it is now; empty for a new database."""

    schemas: list[str] = dataclasses.field(default_factory=list)
    tables: list[TableRows] = dataclasses.field(default_factory=list)
    size: int | None = None
    connections: list[OpenConnection] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class _ServerFacts:
    """What the dry run reads from the target server, in one read-only snapshot."""

    version: str
    version_num: int
    current_user: str
    owner: str  # of the connected database: a restored database gets the same
    extensions: frozenset[str]
    roles: frozenset[str]
    database_exists: bool
    database: _DatabaseFacts


@dataclass
class _Findings:
    warnings: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)


def analyze_restore(
    target: ConnectionInfo,
    storage: Storage,
    manifest: Manifest,
    *,
    mode: RestoreMode,
    new_database: str | None = None,
    backup_dir_free_bytes: int | None = None,
    past_restore_rate: float | None = None,
    pg_restore: str = "pg_restore",
    identities: Sequence[Identity] | None = None,
    rows_after: Sequence[TableRows] | None = None,
    parallel: Parallelism | None = None,
) -> DryRunReport:
    """Analyse restoring ``manifest``'s backup, changing nothing anywhere.

    ``rows_after`` are the tables as the restore leaves them when that is not what the
    manifest recorded (a chain replayed onto its full; rows None where not known).

    ``overwrite`` replaces ``target``'s database; ``new-database`` restores into
    ``new_database`` on ``target``'s server, which must not exist yet. The caller passes
    the free space of the backup directory (where the safety backup of an overwrite
    goes) and ``past_restore_rate``, artifact bytes per second of past restores; an
    encrypted backup needs ``identities`` holding one of its keys. Raises ValueError for
    bad arguments and DryRunError if the server cannot be read or identities are missing.

    ``parallel``, what the restore may do (RESTORE_JOBS), adds whether it would run in
    parallel and the temporary space that takes (``disk.restore_temp``; a read of the
    archive to measure it): a file that does not fit is a warning, as the restore then
    runs serially.
    """
    dbname = _target_name(target, mode, new_database)
    if past_restore_rate is not None and past_restore_rate <= 0:
        raise ValueError(f"past_restore_rate must be positive, not {past_restore_rate}")
    if problem := missing_identities(manifest, identities):
        raise DryRunError(problem)
    findings = _Findings()
    toc = _toc_or_error(storage, manifest, pg_restore, identities, findings)
    # an unreadable TOC already says why (the same key, say) and leaves nothing to check
    saved = _saved_or_error(storage, manifest, identities, findings) if toc is not None else None
    _check_artifact_size(storage, manifest, findings)
    facts = _server_facts(target, dbname, mode)
    if mode == "new-database" and facts.database_exists:
        findings.errors.append(
            f"Database {dbname} already exists: a new-database restore only creates a "
            "database, so pick a name that is not taken."
        )
    now = facts.database
    backup = _backup_summary(manifest, toc)
    if rows_after is not None:
        backup = dataclasses.replace(backup, tables=list(rows_after))
    target_summary = TargetSummary(
        dbname, facts.database_exists, facts.version, now.schemas, now.tables, now.size
    )
    changes = _changes(backup, target_summary)
    _warn_about_changes(mode, dbname, manifest, changes, findings)
    saved_check = (_saved_globals_check(saved, manifest, toc, facts, dbname, mode)
                   if toc is not None and saved is not None else None)
    compatibility = _compatibility(manifest, toc, facts, saved_check, findings)
    disk = _disk_check(backup_dir_free_bytes, now.size, dbname, findings)
    if parallel is not None:
        disk = _with_restore_temp(disk, storage, manifest, identities, parallel, findings)
    _warn_about_connections(dbname, now.connections, findings)
    return DryRunReport(
        mode, backup, target_summary, changes, compatibility, disk, now.connections,
        _estimate(manifest.size, past_restore_rate), findings.warnings, findings.errors,
    )


def analyze_chain_restore(
    target: ConnectionInfo,
    links: Sequence[tuple[Storage, Manifest]],
    until: datetime | None,
    *,
    mode: RestoreMode,
    new_database: str | None = None,
    backup_dir_free_bytes: int | None = None,
    past_restore_rate: float | None = None,
    pg_restore: str = "pg_restore",
    identities: Sequence[Identity] | None = None,
) -> DryRunReport:
    """:func:`analyze_restore` of the chain ``links`` (the full first, each with the
    storage holding it) restored to ``until`` (aware; None: the chain's end): the full's
    analysis, and the chain, its window and the links replayed. A broken chain, or a
    moment outside its window, is an error of the report."""
    storage, full = links[0]
    manifests = [manifest for _, manifest in links]
    try:
        chain = chain_links(manifests)
        window = window_of(chain)
        needed = len(links_for(chain, until)) if until is not None else len(chain)
    except (ChainRestoreError, ChainError) as exc:
        report = analyze_restore(
            target, storage, full, mode=mode, new_database=new_database,
            backup_dir_free_bytes=backup_dir_free_bytes, past_restore_rate=past_restore_rate,
            pg_restore=pg_restore, identities=identities)
        return dataclasses.replace(report, errors=[
            *report.errors, f"The chain cannot be restored: {exc}"])
    report = analyze_restore(
        target, storage, full, mode=mode, new_database=new_database,
        backup_dir_free_bytes=backup_dir_free_bytes, past_restore_rate=past_restore_rate,
        pg_restore=pg_restore, identities=identities,
        rows_after=_rows_after(manifests[:needed], chain[needed - 1].covers_until, until))
    findings = _Findings(list(report.warnings), list(report.errors))
    for link_storage, manifest in links[1:]:
        if problem := missing_identities(manifest, identities):
            raise DryRunError(problem)
        _check_artifact_size(link_storage, manifest, findings)
    moment = _point_in_time(manifests[:needed], until, findings) if until else None
    findings.warnings.append(
        "Large objects and unlogged tables are not captured by the incrementals: they are "
        f"restored as the full backup {full.backup_id} holds them.")
    unkeyed = sorted({table for manifest in manifests[1:needed] if manifest.capture
                      for table in manifest.capture.tables_copied})
    if unkeyed:
        findings.warnings.append(
            f"{len(unkeyed)} table(s) without a primary key or replica identity changed: the "
            "incrementals hold them whole, as they were at the end of each one: "
            f"{', '.join(unkeyed)}.")
    return dataclasses.replace(
        report, warnings=findings.warnings, errors=findings.errors,
        chain=[_chain_link(manifest, position < needed)
               for position, manifest in enumerate(manifests)],
        window=window, point_in_time=moment)


def _rows_after(needed: list[Manifest], covers_until: datetime,
                until: datetime | None) -> list[TableRows]:
    """The tables as the chain's restore leaves them: as the last link replayed whole
    recorded them; the tables a link replayed only up to the moment changes, unknown."""
    whole = needed if until is None or until >= covers_until else needed[:-1]
    partial = set() if len(whole) == len(needed) else set(
        needed[-1].capture.table_changes if needed[-1].capture else ())
    return [TableRows(t.schema, t.name, None if t.qualified_name in partial else t.rows,
                      t.partition_of) for t in whole[-1].tables]


def _chain_link(manifest: Manifest, replayed: bool) -> ChainLink:
    capture = manifest.capture
    assert capture is not None  # chain_links checked it
    return ChainLink(manifest.backup_id, manifest.type, manifest.created, capture.start_lsn,
                     capture.end_lsn, capture.covers_until, replayed)


def _point_in_time(needed: Sequence[Manifest], moment: datetime,
                   findings: _Findings) -> PointInTime:
    """The replay stops inside the last link needed when it holds a later commit."""
    last = needed[-1].capture
    assert last is not None
    inside = len(needed) > 1 and last.last_commit is not None and last.last_commit > moment
    kept = list(last.tables_copied) if inside else []
    if kept:
        findings.warnings.append(
            f"The moment falls inside backup {needed[-1].backup_id}, which copied these "
            "tables whole (they have no usable key): they will hold their state at the end of "
            f"backup {needed[-2].backup_id}, not at the moment: {', '.join(kept)}.")
    return PointInTime(moment, [manifest.backup_id for manifest in needed],
                       needed[-1].backup_id if inside else None, kept)


def _target_name(target: ConnectionInfo, mode: str, new_database: str | None) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown restore mode {mode!r}: expected one of {MODES}")
    if mode == "overwrite":
        if new_database is not None:
            raise ValueError("new_database goes with mode='new-database' only")
        return target.dbname
    if not new_database:
        raise ValueError("mode='new-database' needs new_database")
    return new_database


def _toc_or_error(
    storage: Storage, manifest: Manifest, pg_restore: str,
    identities: Sequence[Identity] | None, findings: _Findings,
) -> Toc | None:
    try:
        return read_toc(storage, manifest, pg_restore, identities)
    except TocError as exc:
        findings.errors.append(f"The backup's table of contents cannot be read: {exc}")
        return None


def _saved_or_error(
    storage: Storage, manifest: Manifest, identities: Sequence[Identity] | None,
    findings: _Findings,
) -> SavedGlobals | None:
    if manifest.globals is None:
        return None
    try:
        return read_globals(storage, manifest, identities)
    except GlobalsError as exc:
        findings.errors.append(f"The backup's saved roles and settings cannot be read: {exc}")
        return None


def _saved_globals_check(
    saved: SavedGlobals, manifest: Manifest, toc: Toc, facts: _ServerFacts, dbname: str,
    mode: RestoreMode,
) -> SavedGlobalsCheck:
    """The roles createRoles would create, and the settings the restore applies to a
    database created like the connected one (its owner, the default privileges)."""
    missing = sorted((toc.roles() | saved.database.roles()) - facts.roles)
    creatable = [role for role in missing if saved.role(role)]
    statements, skipped = database_statements(
        saved.database, dbname, owner=facts.owner, grants=default_grants(facts.owner),
        roles=facts.roles, comment=mode == "overwrite")
    assert manifest.globals is not None  # saved globals come from the file it names
    return SavedGlobalsCheck(
        manifest.globals.file, creatable, [role for role in missing if role not in creatable],
        [statement.as_string(None).strip() for statement in statements], skipped)


def _check_artifact_size(storage: Storage, manifest: Manifest, findings: _Findings) -> None:
    """A cheap sign of a truncated or replaced artifact (the restore checks its SHA-256)."""
    try:
        size = storage.size(manifest.artifact)
    except FileNotFoundError:
        return  # read_toc has said so
    if size != manifest.size:
        findings.errors.append(
            f"The artifact {manifest.artifact} is {size} bytes but its manifest says "
            f"{manifest.size}: it is truncated or was altered."
        )


@contextmanager
def read_only_snapshot(conn: ConnectionInfo) -> Iterator[psycopg.Connection]:
    """A session that cannot write (``default_transaction_read_only = on``), inside a
    ``REPEATABLE READ, READ ONLY`` transaction that is rolled back at the end."""
    with psycopg.connect(conn.conninfo, autocommit=True) as pg:
        pg.execute("SET default_transaction_read_only = on")
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield pg
        finally:
            if not pg.closed:
                pg.execute("ROLLBACK")


def _server_facts(target: ConnectionInfo, dbname: str, mode: RestoreMode) -> _ServerFacts:
    """Everything read from the server; the database itself only when it is overwritten."""
    overwrite = mode == "overwrite"
    try:
        with read_only_snapshot(target) as pg:
            return _ServerFacts(
                version=_scalar(pg, "SHOW server_version").split()[0],
                version_num=int(_scalar(pg, "SHOW server_version_num")),
                current_user=_scalar(pg, "SELECT current_user"),
                owner=_scalar(pg, "SELECT pg_get_userbyid(datdba) FROM pg_database "
                                  "WHERE datname = current_database()"),
                extensions=_column(pg, "SELECT name FROM pg_available_extensions"),
                roles=_column(pg, "SELECT rolname FROM pg_roles"),
                database_exists=overwrite or _database_exists(pg, dbname),
                database=_database_facts(pg) if overwrite else _DatabaseFacts(),
            )
    except psycopg.Error as exc:
        message = target.redact_text(str(exc).strip())
        raise DryRunError(f"cannot read the target {target.redacted()}: {message}") from None


def _scalar(pg: psycopg.Connection, query: str) -> Any:
    row = pg.execute(query).fetchone()
    assert row is not None
    return row[0]


def _column(pg: psycopg.Connection, query: str) -> frozenset[str]:
    return frozenset(row[0] for row in pg.execute(query))


def _database_exists(pg: psycopg.Connection, name: str) -> bool:
    return pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _database_facts(pg: psycopg.Connection) -> _DatabaseFacts:
    """The connected database: schemas, exact row counts, size and other sessions."""
    return _DatabaseFacts(
        schemas=sorted(_column(pg, _SCHEMAS_SQL)),
        tables=_current_tables(pg),
        size=_scalar(pg, "SELECT pg_database_size(current_database())"),
        connections=_open_connections(pg),
    )


def _current_tables(pg: psycopg.Connection) -> list[TableRows]:
    """Every table the manifest would list, with its exact row count (same definition)."""
    return [
        TableRows(table.schema, table.name, table.rows, table.partition_of)
        for table in table_stats(pg, count_rows=True, checksums=False)
    ]


def _open_connections(pg: psycopg.Connection) -> list[OpenConnection]:
    with pg.cursor(row_factory=dict_row) as cursor:
        return [OpenConnection(**row) for row in cursor.execute(_CONNECTIONS_SQL)]


def _backup_summary(manifest: Manifest, toc: Toc | None) -> BackupSummary:
    tables = [TableRows(t.schema, t.name, t.rows, t.partition_of) for t in manifest.tables]
    schemas = toc.schemas() if toc else sorted({t.schema for t in manifest.tables})
    return BackupSummary(
        id=manifest.backup_id, type=manifest.type, created=manifest.created,
        size=manifest.size, database=manifest.database, server_version=manifest.server_version,
        schemas=schemas, tables=tables, toc_entries=len(toc.entries) if toc else None,
    )


def _changes(backup: BackupSummary, target: TargetSummary) -> Changes:
    """Table by table, what the target holds now against what it would hold after."""
    before = {t.qualified_name: t.rows for t in target.tables}
    # A schema-only backup restores every table empty.
    after = {t.qualified_name: 0 if backup.type == "schema-only" else t.rows
             for t in backup.tables}
    roots = {t.qualified_name: t.partition_of for t in [*target.tables, *backup.tables]}

    def change(name: str, rows_before: int | None, rows_after: int | None) -> TableChange:
        delta = None if rows_before is None or rows_after is None else rows_after - rows_before
        return TableChange(name, rows_before, rows_after, delta, roots[name])

    return Changes(
        schemas_dropped=sorted(set(target.schemas) - set(backup.schemas)),
        schemas_created=sorted(set(backup.schemas) - set(target.schemas)),
        dropped=[change(name, before[name], 0) for name in sorted(before.keys() - after)],
        created=[change(name, 0, after[name]) for name in sorted(after.keys() - before)],
        replaced=[
            change(name, before[name], after[name]) for name in sorted(before.keys() & after)
        ],
    )


def _warn_about_changes(
    mode: RestoreMode, dbname: str, manifest: Manifest, changes: Changes, findings: _Findings
) -> None:
    if manifest.type == "schema-only":
        findings.warnings.append(
            "This is a schema-only backup: every table will be empty after the restore."
        )
    if mode != "overwrite":
        return
    if manifest.database != dbname:
        findings.warnings.append(
            f"The backup was taken of database {manifest.database}, not of {dbname}."
        )
    if changes.dropped:
        listed = ", ".join(f"{c.table} ({c.rows_before} rows)" for c in changes.dropped)
        findings.warnings.append(
            f"{dbname} has {table_count(changes.dropped)} that the backup does not; they "
            f"will be dropped with their rows: {listed}."
        )
    shrinking = [c for c in changes.replaced if c.delta is not None and c.delta < 0]
    if shrinking:
        listed = ", ".join(f"{c.table} ({c.rows_before} → {c.rows_after})" for c in shrinking)
        findings.warnings.append(
            f"{table_count(shrinking)} will have fewer rows than now; the rows added since "
            f"the backup will be lost: {listed}."
        )


def _compatibility(
    manifest: Manifest, toc: Toc | None, facts: _ServerFacts,
    saved: SavedGlobalsCheck | None, findings: _Findings,
) -> Compatibility:
    version = _version_check(manifest.server_version, facts.version, facts.version_num, findings)
    if toc is None:
        return Compatibility(version, None, None, None, None, facts.current_user)
    required, referenced = toc.extensions(), sorted(toc.roles())
    missing_extensions = [name for name in required if name not in facts.extensions]
    missing_roles = [name for name in referenced if name not in facts.roles]
    findings.errors.extend(
        f"Extension {name} is used by the backup but is not available on the target server "
        "(pg_available_extensions): install it on the server first."
        for name in missing_extensions
    )
    if missing_roles:
        findings.warnings.append(
            _missing_roles_warning(missing_roles, facts.current_user) + " "
            + _create_roles_hint(saved))
    return Compatibility(
        version, required, missing_extensions, referenced, missing_roles, facts.current_user,
        saved,
    )


def _version_check(
    backup: str, target: str, target_num: int, findings: _Findings
) -> VersionCheck:
    backup_major, target_major = _major(backup), target_num // 10000
    if target_major < backup_major:
        note = (
            f"The target server runs PostgreSQL {target}, an older major version than the "
            f"backup's {backup}: a dump cannot be restored into an older major version."
        )
        findings.errors.append(note)
        return VersionCheck(backup, target, False, note)
    if target_major > backup_major:
        note = (
            f"The target server runs PostgreSQL {target}, a newer major version than the "
            f"backup's {backup}: pg_restore supports that."
        )
        return VersionCheck(backup, target, True, note)
    return VersionCheck(backup, target, True, None)


def _major(version: str) -> int:
    match = re.match(r"\d+", version)
    if match is None:
        raise ValueError(f"not a PostgreSQL version: {version!r}")
    return int(match[0])


def _missing_roles_warning(roles: list[str], restoring_user: str) -> str:
    names = ", ".join(roles)
    return (
        f"Role(s) {names} own objects or hold grants in the backup but do not exist on the "
        "target server, so the restore will run with --no-owner and --no-privileges: every "
        f"restored object will be owned by the restoring user {restoring_user}, and no GRANT "
        "or REVOKE from the backup will be applied (for any role, not only these)."
    )


def _create_roles_hint(saved: SavedGlobalsCheck | None) -> str:
    if saved is None:
        return ("The backup saved no roles (it was taken before roles were saved): create "
                "them by hand (CREATE ROLE name NOLOGIN) to keep owners and grants.")
    if not saved.roles_to_create:
        return "The backup did not save these roles either."
    return (f"The backup saved {', '.join(saved.roles_to_create)}: a restore with createRoles "
            "creates them first (attributes, and memberships among the roles it creates; "
            "existing roles are never changed), and keeps owners and grants once no role "
            "is missing.")


def _disk_check(
    free: int | None, database_size: int | None, dbname: str, findings: _Findings
) -> DiskCheck:
    """The safety backup, estimated at ``database_size``: None when nothing is overwritten."""
    if database_size is None:
        notes = [SERVER_DISK_NOTE, "No safety backup is taken: no database is overwritten."]
        return DiskCheck(free, None, None, notes)
    notes = [
        f"{SERVER_DISK_NOTE} The backup is restored into a second database next to {dbname} "
        "before it is swapped in, so the server needs room for both for a while.",
        "The safety backup is estimated at the database's current size (pg_database_size); "
        "its compressed dump is usually much smaller, so the estimate errs on the safe side.",
    ]
    if free is None:
        notes.append("The backup directory's free space was not given.")
        return DiskCheck(None, database_size, None, notes)
    fits = free >= database_size
    if not fits:
        findings.warnings.append(
            f"The safety backup of {dbname} (estimated at {_size(database_size)}, its current "
            f"size) may not fit in the backup directory's {_size(free)} of free space."
        )
    return DiskCheck(free, database_size, fits, notes)


def _with_restore_temp(
    disk: DiskCheck, storage: Storage, manifest: Manifest,
    identities: Sequence[Identity] | None, parallel: Parallelism, findings: _Findings,
) -> DiskCheck:
    """``disk`` with the restore's mode and temporary file, and a note saying them."""
    encrypted = manifest.encryption is not None
    try:
        size = manifest.archive_size
        if size is None and needs_size(parallel, encrypted):  # an older backup: measured
            size = checked_archive_size(storage, manifest, identities)
    except RestoreError as exc:  # the integrity check says more
        note = f"The restore's mode was not decided: {exc}."
        return dataclasses.replace(disk, notes=[*disk.notes, note])
    choice = choose_jobs(parallel, size, encrypted=encrypted)
    temp = RestoreTemp(choice.jobs, choice.mode, choice.reason, choice.temp_dir,
                       choice.temp_bytes, choice.temp_free_bytes,
                       None if choice.temp_free_bytes is None else choice.warning is None)
    if choice.warning:
        findings.warnings.append(f"The backup would be {choice.warning}.")
    return dataclasses.replace(disk, restore_temp=temp,
                               notes=[*disk.notes, _restore_temp_note(choice)])


def _restore_temp_note(choice: JobsChoice) -> str:
    if choice.parallel:
        assert choice.temp_bytes is not None and choice.temp_free_bytes is not None
        return (f"Restored in parallel ({choice.jobs} jobs): the uncompressed archive, "
                f"{_size(choice.temp_bytes)}, is written to {choice.temp_dir} "
                f"({_size(choice.temp_free_bytes)} free) for the restore's duration.")
    return f"Restored serially ({choice.reason.removeprefix('serial: ')})."


def _warn_about_connections(
    dbname: str, connections: list[OpenConnection], findings: _Findings
) -> None:
    if not connections:
        return
    listed = "; ".join(
        f"pid {c.pid} ({c.user or 'unknown user'}, {c.application or 'no application name'}, "
        f"{c.state or 'state unknown'})"
        for c in connections
    )
    findings.warnings.append(
        f"{len(connections)} open connection(s) to {dbname} will be cut when the restored "
        f"database is swapped in: {listed}."
    )


def _estimate(size: int, rate: float | None) -> Estimate:
    if rate is None:
        return Estimate(None, None, NO_PAST_RESTORE)
    note = f"{_size(size)} of artifact at {_size(round(rate))}/s, the rate of past restores"
    return Estimate(round(size / rate, 1), rate, note)
