"""Taking a backup: pg_dump in an exported snapshot, streamed into storage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from pgbackup.connection import ConnectionInfo
from pgbackup.encryption import Recipient, encrypting_writer, parse_recipients
from pgbackup.errors import BackupError
from pgbackup.ids import artifact_name, is_backup_id, manifest_name
from pgbackup.manifest import KINDS, BackupKind, Encryption, Manifest, write_manifest
from pgbackup.pgdump import StderrCollector, pg_dump_args, pg_dump_version, running
from pgbackup.snapshot import Snapshot, exported_snapshot
from pgbackup.storage import Storage
from pgbackup.streams import HashingWriter, Writable, copy_stream, zstd_writer
from pgbackup.version import TOOL_NAME, __version__

PROGRESS_INTERVAL = 0.5


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
) -> Manifest:
    """Back up ``conn``'s database as ``backup_id``: artifact first, then its manifest.

    A full backup records every table's row count and, with ``checksums``, its content
    checksum, both taken in the dump's own snapshot (a second read of the data); a
    schema-only backup records neither. With ``encrypt_to`` (age public keys) the artifact
    is an age file for those recipients (``.age``), encrypted as it streams.

    Raises BackupError, leaving nothing in storage (if the process dies: a ``.partial``);
    ConfigError for a bad recipient.
    """
    if not is_backup_id(backup_id):
        raise ValueError(f"not a backup id: {backup_id!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown backup type {kind!r}: expected one of {KINDS}")
    recipients = None if encrypt_to is None else parse_recipients(encrypt_to)
    artifact = artifact_name(backup_id, compress, encrypted=recipients is not None)
    if storage.exists(artifact) or storage.exists(manifest_name(backup_id)):
        raise BackupError(f"backup {backup_id} already exists in storage")
    started, created = time.monotonic(), datetime.now(UTC)
    dump_version = pg_dump_version(pg_dump)
    full = kind == "full"
    try:
        # The snapshot's transaction ends when this block exits, and may fail then (its
        # backend was terminated, say): the artifact is not a backup until after that.
        with exported_snapshot(conn, count_rows=full, checksums=full and checksums) as snapshot:
            sha256, content_sha256 = _dump_to_storage(
                conn, storage, artifact, snapshot, kind, compress, recipients, progress, pg_dump
            )
        manifest = Manifest(
            backup_id=backup_id, type=kind, created=created, database=conn.dbname,
            server_version=snapshot.server_version, pg_dump_version=dump_version,
            tool=f"{TOOL_NAME} {tool_version}", artifact=artifact, size=storage.size(artifact),
            sha256=sha256, compression="zstd" if compress else "none", tables=snapshot.tables,
            snapshot=snapshot.snapshot_id,
            duration_ms=round((time.monotonic() - started) * 1000),
            encryption=None if recipients is None else Encryption(
                recipients=[str(recipient) for recipient in recipients]
            ),
            content_sha256=content_sha256,
        )
        write_manifest(storage, manifest)
    except BaseException:
        # Both names were free when we started: whatever is there now is ours.
        storage.delete(manifest_name(backup_id))
        storage.delete(artifact)
        raise
    return manifest


def _dump_to_storage(
    conn: ConnectionInfo, storage: Storage, artifact: str, snapshot: Snapshot,
    kind: BackupKind, compress: bool, recipients: Sequence[Recipient] | None,
    progress: ProgressCallback | None, pg_dump: str,
) -> tuple[str, str | None]:
    """Stream pg_dump's output into ``artifact``; returns the stored file's sha256 and, when
    encrypted, the sha256 of the archive bytes before encryption."""
    with conn.subprocess_env() as (env, dsn):
        args = pg_dump_args(pg_dump, dsn, snapshot.snapshot_id, kind == "schema-only")
        with running(args, env) as (process, stderr), storage.atomic_writer(artifact) as raw:
            stored = HashingWriter(raw)
            reporter = _ProgressReporter(progress, stored, stderr, len(snapshot.tables))
            reporter.tick()
            assert process.stdout is not None  # started with stdout=PIPE
            with _archive_writer(stored, compress, recipients) as (sink, content):
                copy_stream(process.stdout, sink, on_chunk=reporter.tick)
            returncode = process.wait()
            stderr.join()
            if returncode != 0:
                detail = conn.redact_text(stderr.failure_text())
                raise BackupError(f"pg_dump failed with exit status {returncode}:\n{detail}")
            reporter.finish()  # inside: a callback raising here still discards the artifact
    return stored.hexdigest(), None if content is None else content.hexdigest()


@contextmanager
def _archive_writer(
    stored: Writable, compress: bool, recipients: Sequence[Recipient] | None
) -> Iterator[tuple[Writable, HashingWriter | None]]:
    """Yield the sink for pg_dump's output (compressed, then encrypted, into ``stored``) and,
    when encrypting, the hasher of the bytes going into encryption."""
    with encrypting_writer(stored, recipients) if recipients else nullcontext(stored) as raw:
        content = HashingWriter(raw) if recipients else None
        archive = content or raw
        with zstd_writer(archive) if compress else nullcontext(archive) as sink:
            yield sink, content
