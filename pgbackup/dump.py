"""Taking a backup: pg_dump in an exported snapshot, streamed into storage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from pgbackup.connection import ConnectionInfo
from pgbackup.encryption import Recipient, encrypting_writer, parse_recipients
from pgbackup.errors import BackupError
from pgbackup.fanout import Branch, FanOutError, fan_out
from pgbackup.globals import capture_globals, globals_name, write_globals
from pgbackup.ids import artifact_name, is_backup_id, manifest_name
from pgbackup.manifest import BackupKind, Encryption, Manifest, write_manifest
from pgbackup.pgdump import StderrCollector, pg_dump_args, pg_dump_version, running
from pgbackup.snapshot import Snapshot, exported_snapshot
from pgbackup.storage import Storage
from pgbackup.streams import HashingWriter, Writable, copy_stream, zstd_writer
from pgbackup.version import TOOL_NAME, __version__

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


@dataclass(frozen=True)
class Target:
    """One place a dump is written to, encrypted to its own recipients (if any). A
    ``required`` target that fails fails the backup; an optional one fails alone."""

    name: str
    storage: Storage
    encrypt_to: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class Copy:
    """What one target got: its manifest, or the error that stopped it."""

    target: Target
    manifest: Manifest | None
    error: str | None = None


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
) -> Manifest:
    """Back up ``conn``'s database as ``backup_id`` into one storage (see run_dump_to).
    ``encrypt_to`` (age public keys) makes the artifact an age file (``.age``); an empty
    list is refused (ConfigError), so is a bad recipient."""
    if encrypt_to is not None:
        parse_recipients(encrypt_to)
    target = Target("storage", storage, tuple(encrypt_to or ()))
    [copy] = run_dump_to(conn, [target], backup_id, kind, compress, progress, checksums,
                         pg_dump, tool_version, manifest_key, role_passwords)
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
) -> list[Copy]:
    """Back up ``conn``'s database as ``backup_id`` into every target at once: one pg_dump,
    compressed once, each target's copy encrypted to its recipients and checksummed as
    stored; artifact first, then its manifest.

    A full backup records every table's row count and, with ``checksums``, its content
    checksum, both taken in the dump's own snapshot (a second read of the data); a
    schema-only backup records neither.

    Raises BackupError when the dump or a required target fails, leaving nothing in any
    target (if the process dies: a ``.partial`` or an unfinished upload). An optional
    target that fails has its error in its Copy and nothing stored.

    With ``manifest_key``, every manifest is signed with it (see pgbackup.manifest).

    Every backup also saves the server's roles and the database's own settings and grants
    (pgbackup.globals), read just before pg_dump starts, in a sidecar beside each artifact,
    written after it and before the manifest that lists it; with ``role_passwords``, the
    roles' password hashes too.
    """
    if not is_backup_id(backup_id):
        raise ValueError(f"not a backup id: {backup_id!r}")
    if kind not in DUMP_KINDS:
        raise ValueError(f"unknown backup type {kind!r}: expected one of {DUMP_KINDS}")
    plans = [_Plan.of(target, backup_id, compress) for target in targets]
    started, created = time.monotonic(), datetime.now(UTC)
    dump_version = pg_dump_version(pg_dump)
    full = kind == "full"
    try:
        # The snapshot's transaction ends when this block exits, and may fail then (its
        # backend was terminated, say): the artifacts are not a backup until after that.
        with exported_snapshot(conn, count_rows=full, checksums=full and checksums) as snapshot:
            saved_globals = capture_globals(conn, role_passwords).to_bytes()
            content_sha256 = _dump_to_targets(
                conn, plans, snapshot, kind, compress, progress, pg_dump)
        base = {"backup_id": backup_id, "type": kind, "created": created,
                "database": conn.dbname, "server_version": snapshot.server_version,
                "pg_dump_version": dump_version, "tool": f"{TOOL_NAME} {tool_version}",
                "compression": "zstd" if compress else "none", "tables": snapshot.tables,
                "snapshot": snapshot.snapshot_id,
                "duration_ms": round((time.monotonic() - started) * 1000)}
        copies = [plan.finish(base, content_sha256, manifest_key, saved_globals=saved_globals)
                  for plan in plans]
    except BaseException:
        for plan in plans:
            plan.discard()
        raise
    return copies


@dataclass
class _Plan:
    """One target's part of a dump: its artifact's name, hashes and outcome."""

    target: Target
    backup_id: str
    artifact: str
    recipients: list[Recipient] | None
    stored: HashingWriter | None = None
    error: BaseException | None = None

    @classmethod
    def of(cls, target: Target, backup_id: str, compress: bool) -> _Plan:
        """The plan for ``target``; an optional target that cannot be reached (or already
        holds the backup) is planned as failed, a required one raises BackupError."""
        recipients = parse_recipients(target.encrypt_to) if target.encrypt_to else None
        artifact = artifact_name(backup_id, compress, encrypted=recipients is not None)
        plan = cls(target, backup_id, artifact, recipients)
        try:
            for name in (artifact, manifest_name(backup_id)):
                if target.storage.exists(name):
                    raise BackupError(f"backup {backup_id} already exists in {target.name}")
        except BackupError as exc:
            if target.required:
                raise
            plan.error = exc
        except Exception as exc:
            if target.required:
                raise BackupError(f"writing to {target.name} failed: {_sentence(exc)}") from exc
            plan.error = exc
        return plan

    @contextmanager
    def writer(self) -> Iterator[Writable]:
        """The sink for the archive's bytes: encrypted when asked, hashed as stored."""
        with self.target.storage.atomic_writer(self.artifact) as raw:
            self.stored = HashingWriter(raw)
            with (encrypting_writer(self.stored, self.recipients) if self.recipients
                  else nullcontext(self.stored)) as sink:
                yield sink

    def finish(self, base: dict[str, object], content_sha256: str,
               manifest_key: bytes | None = None, *, saved_globals: bytes) -> Copy:
        """Write the globals sidecar and the manifest of a stored artifact, or report why
        there is none."""
        if self.error is not None:
            return Copy(self.target, None, _sentence(self.error))
        assert self.stored is not None
        try:
            sidecar = write_globals(self.target.storage, globals_name(self.artifact),
                                    saved_globals, base["compression"] == "zstd",
                                    self.recipients)
        except Exception as exc:
            return self._failed(exc)
        encrypted = self.recipients is not None
        manifest = Manifest.model_validate({
            **base, "artifact": self.artifact, "size": self.target.storage.size(self.artifact),
            "sha256": self.stored.hexdigest(),
            "encryption": Encryption(recipients=[str(r) for r in self.recipients or []])
            if encrypted else None,
            "content_sha256": content_sha256 if encrypted else None, "globals": sidecar})
        if manifest_key is not None:
            manifest = manifest.signed(manifest_key)
        try:
            write_manifest(self.target.storage, manifest)
        except Exception as exc:
            return self._failed(exc)
        return Copy(self.target, manifest)

    def _failed(self, exc: Exception) -> Copy:
        """A write after the artifact failed: nothing stays; a required target raises."""
        self.discard()
        if self.target.required:
            raise exc
        return Copy(self.target, None, _sentence(exc))

    def discard(self) -> None:
        """Delete what this dump wrote here. Only a target whose writer was opened (so both
        names were free at the start) is touched: a target planned as failed may hold
        another run's files under these names, or be unreachable."""
        if self.stored is None:
            return
        for name in (manifest_name(self.backup_id), globals_name(self.artifact), self.artifact):
            with suppress(Exception):  # a target that is gone keeps nothing to delete
                self.target.storage.delete(name)


def _sentence(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _dump_to_targets(
    conn: ConnectionInfo, plans: list[_Plan], snapshot: Snapshot, kind: BackupKind,
    compress: bool, progress: ProgressCallback | None, pg_dump: str,
) -> str:
    """Stream pg_dump's output, compressed once, into every target; returns the sha256 of
    the archive bytes (before any encryption)."""
    live = [plan for plan in plans if plan.error is None]
    branches = [Branch(plan.target.name, plan.writer, plan.target.required) for plan in live]
    with conn.subprocess_env() as (env, dsn):
        args = pg_dump_args(pg_dump, dsn, snapshot.snapshot_id, kind == "schema-only")
        try:
            with running(args, env) as (process, stderr), fan_out(branches) as targets:
                archive = HashingWriter(targets)
                reporter = _ProgressReporter(progress, archive, stderr, len(snapshot.tables))
                reporter.tick()
                assert process.stdout is not None  # started with stdout=PIPE
                with zstd_writer(archive) if compress else nullcontext(archive) as sink:
                    copy_stream(process.stdout, sink, on_chunk=reporter.tick)
                returncode = process.wait()
                stderr.join()
                if returncode != 0:
                    detail = conn.redact_text(stderr.failure_text())
                    raise BackupError(
                        f"pg_dump failed with exit status {returncode}:\n{detail}")
                reporter.finish()  # inside: a callback raising here still discards all
        except FanOutError as exc:
            raise BackupError(f"writing to {exc.branch.name} failed: "
                              f"{_sentence(exc.branch.error or exc)}") from exc
    for plan, branch in zip(live, branches, strict=True):
        plan.error = branch.error
    return archive.hexdigest()
