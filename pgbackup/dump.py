"""Taking a backup: pg_dump in an exported snapshot, streamed into storage."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pgbackup.connection import ConnectionInfo
from pgbackup.copydigest import ArchiveFormatError, CopyDigester, stream_tables
from pgbackup.encryption import parse_recipients
from pgbackup.errors import BackupError
from pgbackup.globals import capture_globals
from pgbackup.ids import backup_id_time, is_backup_id
from pgbackup.manifest import BackupKind, Capture, Manifest, TableInfo
from pgbackup.pgdump import (
    StderrCollector,
    pg_dump_args,
    pg_dump_version,
    pinned,
    running,
)
from pgbackup.slot_snapshot import slot_snapshot
from pgbackup.snapshot import Snapshot, exported_snapshot
from pgbackup.storage import Storage
from pgbackup.streams import DEFAULT_ZSTD, HashingWriter, Writable, Zstd, copy_stream
from pgbackup.targets import Copy, Target, TargetWrite, streaming_to
from pgbackup.version import TOOL_NAME, __version__

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5
DUMP_KINDS: tuple[BackupKind, ...] = ("full", "schema-only")  # what pg_dump takes


@dataclass(frozen=True)
class DumpProgress:
    bytes_written: int  # bytes stored so far (after compression)
    current_table: str | None  # "schema.table" pg_dump is dumping, if known
    tables_done: int
    tables_total: int


ProgressCallback = Callable[[DumpProgress], None]


class _ProgressReporter:
    """Calls back at the start, at most every PROGRESS_INTERVAL seconds, and at the end."""

    def __init__(
        self, callback: ProgressCallback | None, stored: HashingWriter,
        stderr: StderrCollector, tables_total: int,
    ) -> None:
        self._callback = callback
        self._stored = stored
        self._stderr = stderr
        self._total = tables_total
        self._last = float("-inf")

    def tick(self, _chunk_size: int = 0) -> None:
        if time.monotonic() - self._last >= PROGRESS_INTERVAL:
            done = min(max(self._stderr.tables_started - 1, 0), self._total)
            self._report(DumpProgress(
                self._stored.bytes_written, self._stderr.current_table, done, self._total
            ))

    def finish(self) -> None:
        self._report(DumpProgress(self._stored.bytes_written, None, self._total, self._total))

    def _report(self, progress: DumpProgress) -> None:
        self._last = time.monotonic()
        if self._callback is not None:
            self._callback(progress)


def run_dump(
    conn: ConnectionInfo,
    storage: Storage,
    backup_id: str,
    kind: BackupKind,
    compress: bool = True,
    progress: ProgressCallback | None = None,
    checksums: bool = True,
    pg_dump: str = "pg_dump",
    tool_version: str = __version__,
    encrypt_to: list[str] | None = None,
    manifest_key: bytes | None = None,
    role_passwords: bool = False,
    capture_slot: str | None = None,
    zstd: Zstd = DEFAULT_ZSTD,
) -> Manifest:
    """Back up ``conn``'s database as ``backup_id`` into one storage (see run_dump_to).
    ``encrypt_to`` (age public keys) makes the artifact an age file (``.age``); an empty
    list is refused (ConfigError), so is a bad recipient."""
    if encrypt_to is not None:
        parse_recipients(encrypt_to)
    target = Target("storage", storage, tuple(encrypt_to or ()))
    [copy] = run_dump_to(conn, [target], backup_id, kind, compress, progress, checksums,
                         pg_dump, tool_version, manifest_key, role_passwords, capture_slot,
                         zstd)
    assert copy.manifest is not None  # a required target either succeeds or raises
    return copy.manifest


def run_dump_to(
    conn: ConnectionInfo,
    targets: Sequence[Target],
    backup_id: str,
    kind: BackupKind,
    compress: bool = True,
    progress: ProgressCallback | None = None,
    checksums: bool = True,
    pg_dump: str = "pg_dump",
    tool_version: str = __version__,
    manifest_key: bytes | None = None,
    role_passwords: bool = False,
    capture_slot: str | None = None,
    zstd: Zstd = DEFAULT_ZSTD,
) -> list[Copy]:
    """Back up ``conn``'s database as ``backup_id`` into every target at once: one pg_dump,
    compressed once, each target's copy encrypted to its recipients and checksummed as
    stored; artifact first, then its manifest.

    A full backup records every table's row count and, with ``checksums``, its content
    checksum, both computed from pg_dump's stream as it passes (pgbackup.copydigest: no
    second read of the data); a schema-only backup records neither.

    Raises BackupError when the dump or a required target fails, leaving nothing in any
    target (if the process dies: a ``.partial`` or an unfinished upload). An optional
    target that fails has its error in its Copy and nothing stored.

    ``zstd`` is the compression's level and threads when ``compress``; the manifest
    records the level.

    With ``manifest_key``, every manifest is signed with it (see pgbackup.manifest).

    Every backup also saves the server's roles and the database's own settings and grants
    (pgbackup.globals), read just before pg_dump starts, in a sidecar beside each artifact,
    written after it and before the manifest that lists it; with ``role_passwords``, the
    roles' password hashes too.

    With ``capture_slot``, the backup starts a chain: its snapshot is exported by a new
    logical replication slot of that name (pgbackup.slot_snapshot), which then holds every
    change committed after it; the manifest's ``capture`` says where the chain starts. The
    slot is dropped if the backup fails.
    """
    if not is_backup_id(backup_id):
        raise ValueError(f"not a backup id: {backup_id!r}")
    if kind not in DUMP_KINDS:
        raise ValueError(f"unknown backup type {kind!r}: expected one of {DUMP_KINDS}")
    writes = [TargetWrite.of(target, backup_id, compress, kind) for target in targets]
    # The id's time: when the backup was asked for, as the catalog has it too.
    started, created = time.monotonic(), backup_id_time(backup_id)
    dump_version = pg_dump_version(pg_dump)
    full = kind == "full"
    digester = CopyDigester(hashing=checksums) if full else None
    try:
        # The snapshot's transaction ends when this block exits, and may fail then (its
        # backend was terminated, say): the artifacts are not a backup until after that.
        with _snapshot(conn, capture_slot, pg_dump) as (snapshot, capture):
            saved_globals = capture_globals(conn, role_passwords).to_bytes()
            content_sha256, archive_size = _dump_to_targets(
                conn, writes, snapshot, kind, compress, zstd, progress, pg_dump, digester)
            tables = _tables(snapshot, digester, checksums)
        base = {"backup_id": backup_id, "type": kind, "created": created,
                "database": conn.dbname, "server_version": snapshot.server_version,
                "pg_dump_version": dump_version, "tool": f"{TOOL_NAME} {tool_version}",
                "compression": "zstd" if compress else "none",
                "compression_level": zstd.level if compress else None,
                "archive_size": archive_size,
                "tables": tables,
                "snapshot": snapshot.snapshot_id, "capture": capture,
                "duration_ms": round((time.monotonic() - started) * 1000)}
        copies = [write.finish(base, content_sha256, manifest_key,
                               saved_globals=saved_globals) for write in writes]
    except BaseException:
        for write in writes:
            write.discard()
        raise
    return copies


@contextmanager
def _snapshot(conn: ConnectionInfo, capture_slot: str | None,
              pg_dump: str) -> Iterator[tuple[Snapshot, Capture | None]]:
    """The dump's snapshot: a new slot's when it starts a chain, else its own."""
    if capture_slot is not None:
        with slot_snapshot(conn, capture_slot, pg_dump) as described:
            yield described
        return
    with exported_snapshot(conn) as snapshot:
        yield snapshot, None


def _tables(snapshot: Snapshot, digester: CopyDigester | None,
            checksums: bool) -> list[TableInfo]:
    """The snapshot's tables, with their rows (and checksums) from the stream when full;
    read in the snapshot when the stream's archive version is one the parser does not know
    (decimal checksums, as before the stream digests: pgbackup.tablestats)."""
    if digester is None:
        return snapshot.tables
    if digester.unsupported:
        log.warning("pg_dump wrote %s, which the stream parser does not read: the tables "
                    "are counted%s by a second read", digester.unsupported,
                    " and summed" if checksums else "")
        return snapshot.scan(checksums)
    try:
        return stream_tables(snapshot.tables, digester.finish(), checksums)
    except ArchiveFormatError as exc:
        raise BackupError(f"cannot count the tables' rows in pg_dump's archive: {exc}") from None


class _Measuring:
    """Forwards pg_dump's archive to ``sink``, counting its bytes and feeding them to
    ``digester`` (when there is one)."""

    def __init__(self, sink: Writable, digester: CopyDigester | None) -> None:
        self._sink, self._digester = sink, digester
        self.size = 0

    def write(self, data: bytes) -> int:
        written = self._sink.write(data)
        self.size += len(data)
        if self._digester is not None:
            self._digester.feed(data)
        return written


def _dump_to_targets(
    conn: ConnectionInfo, writes: list[TargetWrite], snapshot: Snapshot, kind: BackupKind,
    compress: bool, zstd: Zstd, progress: ProgressCallback | None, pg_dump: str,
    digester: CopyDigester | None,
) -> tuple[str, int]:
    """Stream pg_dump's output, compressed once, into every target, and through
    ``digester``; returns the sha256 of the stored archive bytes (before any encryption)
    and the size of pg_dump's archive (before compression)."""
    with conn.subprocess_env() as (tool_env, tool_dsn):
        env, dsn = pinned(tool_env, tool_dsn)
        args = pg_dump_args(pg_dump, dsn, snapshot.snapshot_id, kind == "schema-only")
        with running(args, env) as (process, stderr), \
                streaming_to(writes, compress, zstd) as (sink, archive):
            reporter = _ProgressReporter(progress, archive, stderr, len(snapshot.tables))
            reporter.tick()
            assert process.stdout is not None  # started with stdout=PIPE
            measured = _Measuring(sink, digester)
            try:
                copy_stream(process.stdout, measured, on_chunk=reporter.tick)
            except ArchiveFormatError as exc:
                raise BackupError(f"cannot read pg_dump's archive as it streams: {exc}") from None
            returncode = process.wait()
            stderr.join()
            if returncode != 0:
                detail = conn.redact_text(stderr.failure_text())
                raise BackupError(f"pg_dump failed with exit status {returncode}:\n{detail}")
    reporter.finish()  # every byte stored; a callback raising here: run_dump_to discards all
    return archive.hexdigest(), measured.size
