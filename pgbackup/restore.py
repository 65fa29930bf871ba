"""Restoring a backup: the artifact streamed into pg_restore, all or nothing.

- **Checked first.** The artifact must have the size and SHA-256 of its manifest before
  pg_restore is started, so a truncated or altered file restores nothing.
- **Streamed.** It is decrypted (age) and decompressed on the fly into pg_restore's stdin;
  there is never a plaintext or uncompressed copy on disk (but in parallel, below).
- **All or nothing.** pg_restore runs with ``--single-transaction --exit-on-error``: a
  restore that fails at any point, or is cancelled (pg_restore is killed), commits nothing.
- **Or in parallel**, for a database that is dropped when the restore fails (the caller
  passes a :class:`~pgbackup.restore_jobs.Parallelism`): the archive is uncompressed into
  a private temporary file, deleted whatever happens, and ``pg_restore -j N`` restores it
  (no single transaction: the dropped database is what makes it all or nothing). See
  :mod:`pgbackup.restore_jobs` for when that is chosen.
- **No password in argv.** As for pg_dump, it reaches pg_restore through a temporary
  passfile only, and it is masked in every error message.

To replace a live database, restore into a new one (:func:`restore_into_new_database`),
check it, then swap it in with :func:`pgbackup.dbadmin.swap_databases`.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, Any

import psycopg
import zstandard

from pgbackup.archive import ArchiveSource, decrypted, missing_identities
from pgbackup.archive_offsets import add_data_offsets
from pgbackup.connection import ConnectionInfo
from pgbackup.dbadmin import (
    create_database,
    database_exists,
    drop_database,
    validate_database_name,
)
from pgbackup.encryption import Identity
from pgbackup.errors import DecryptionError
from pgbackup.manifest import Manifest
from pgbackup.processes import die_with_parent
from pgbackup.restore_jobs import SERIAL, JobsChoice, Parallelism, choose_jobs, needs_size
from pgbackup.storage import Storage
from pgbackup.streams import (
    CHUNK_SIZE,
    HashingReader,
    Readable,
    archive_reader,
    copy_stream,
    sha256_of,
)

PROGRESS_INTERVAL = 0.5
STDERR_LINES_KEPT = 200
MAX_WARNINGS = 100
_ERROR_LINES_SHOWN = 20
TEMP_PREFIX = "pgbackup-restore-"  # a parallel restore's temporary file: see uncompressed_copy
UNPACKING = "writing the uncompressed archive to a temporary file for pg_restore --jobs"
# With --verbose, pg_restore starts each archive item with one of these lines:
#   pg_restore: creating TABLE "public.actor"
#   pg_restore: processing data for table "public.actor"
#   pg_restore: executing SEQUENCE SET actor_actor_id_seq
_ITEM_RE = re.compile(r"^pg_restore: (?P<item>(?:creating|processing|executing) .+)$")
# pg_restore's own warnings, and the server's (relayed as "pg_restore: WARNING:  ...").
_WARNING_RE = re.compile(r"^pg_restore: (?P<warning>(?:warning|WARNING): .+)$")
# Where the explanation of a failure starts.
_FAILURE_RE = re.compile(r"^pg_restore: (?:while PROCESSING TOC:|error: )")


class RestoreError(RuntimeError):
    """A restore failed and committed nothing. The message never contains a password."""


@dataclass(frozen=True)
class RestoreProgress:
    items_done: int  # archive items (schema objects, table data, ...) restored so far
    items_total: int
    current_item: str | None  # e.g. 'processing data for table "public.actor"'


@dataclass(frozen=True)
class RestoreOutcome:
    items_total: int
    duration_ms: int
    warnings: list[str]  # pg_restore's and the server's warnings, at most MAX_WARNINGS
    jobs: JobsChoice = SERIAL  # the mode it ran in: serial, or parallel with N jobs


ProgressCallback = Callable[[RestoreProgress], None]


class _RestoreLog:
    """Drains pg_restore's stderr in a thread: the tail, the items begun, the warnings."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self.items_started = 0
        self.current_item: str | None = None
        self.warnings: list[str] = []
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            if item := _ITEM_RE.match(line):
                self.current_item = item["item"]
                self.items_started += 1
            elif (warning := _WARNING_RE.match(line)) and len(self.warnings) < MAX_WARNINGS:
                self.warnings.append(warning["warning"])

    def join(self) -> None:
        self._thread.join()

    def failure_text(self) -> str:
        """From the first error line on (the failed statement's start), else the tail."""
        lines = list(self.lines)
        start = next((i for i, line in enumerate(lines) if _FAILURE_RE.match(line)), None)
        if start is None:
            return "\n".join(lines[-_ERROR_LINES_SHOWN:]).strip()
        return "\n".join(lines[start:start + _ERROR_LINES_SHOWN]).strip()


class _ProgressReporter:
    """Calls back at the start, at most every PROGRESS_INTERVAL seconds, and at the end."""

    def __init__(
        self, callback: ProgressCallback | None, log: _RestoreLog, items_total: int
    ) -> None:
        self._callback = callback
        self._log = log
        self._total = items_total
        self._last = float("-inf")

    def tick(self, _chunk_size: int = 0) -> None:
        if time.monotonic() - self._last >= PROGRESS_INTERVAL:
            done = min(max(self._log.items_started - 1, 0), self._total)
            self._report(RestoreProgress(done, self._total, self._log.current_item))

    def finish(self) -> None:
        self._report(RestoreProgress(self._total, self._total, None))

    def _report(self, progress: RestoreProgress) -> None:
        self._last = time.monotonic()
        if self._callback is not None:
            self._callback(progress)


def restore_archive(
    target: ConnectionInfo,
    storage: Storage,
    manifest: Manifest,
    *,
    no_owner: bool = False,
    no_acl: bool = False,
    progress: ProgressCallback | None = None,
    pg_restore: str = "pg_restore",
    identities: Sequence[Identity] | None = None,
    parallel: Parallelism | None = None,
) -> RestoreOutcome:
    """Restore the backup ``manifest`` describes into ``target``'s (existing) database.

    ``no_owner`` and ``no_acl`` skip ownership and GRANTs (``--no-owner``,
    ``--no-privileges``), for a server without the original roles. An encrypted backup
    needs ``identities`` (age) holding one of its keys. Raising from ``progress`` cancels
    the restore. Whatever it raises (RestoreError, or what ``progress`` raised), nothing
    was committed, unless ``progress`` raised at its final call, which comes after
    pg_restore has committed.

    ``parallel`` allows ``pg_restore -j N`` (see :mod:`pgbackup.restore_jobs`): only for a
    target database that the caller drops when this raises, since a parallel restore
    that fails midway leaves what it restored so far. The outcome says which mode ran.
    """
    started = time.monotonic()
    if problem := missing_identities(manifest, identities):
        raise RestoreError(problem)
    encrypted = manifest.encryption is not None
    if needs_size(parallel, encrypted) and manifest.archive_size is None:  # older backups
        jobs = choose_jobs(parallel, checked_archive_size(storage, manifest, identities),
                           encrypted=encrypted)
    else:
        check_artifact(storage, manifest)
        jobs = choose_jobs(parallel, manifest.archive_size, encrypted=encrypted)
    archive = ArchiveSource(storage, manifest, identities, RestoreError)
    options = [*(["--no-owner"] if no_owner else []), *(["--no-privileges"] if no_acl else [])]
    with target.subprocess_env() as (env, dsn):
        run = _Run(pg_restore, options, env, dsn, target, progress)
        if jobs.parallel:
            jobs, warnings, items_total = _parallel_or_serial(run, archive, jobs)
        else:
            warnings, items_total = run.serial(archive)
    duration_ms = round((time.monotonic() - started) * 1000)
    fell_back = [jobs.warning] if jobs.warning else []
    return RestoreOutcome(items_total, duration_ms, [*fell_back, *warnings], jobs)


def _parallel_or_serial(run: _Run, archive: ArchiveSource, jobs: JobsChoice
                        ) -> tuple[JobsChoice, list[str], int]:
    """Parallel over a temporary file; serial, with a warning, when the file's disk fills
    up while it is written."""
    assert jobs.temp_dir is not None
    try:
        with uncompressed_copy(archive, jobs.temp_dir, run.unpacking) as path:
            return (jobs, *run.parallel(path, jobs.jobs))
    except TempSpaceFull as full:
        fallback = JobsChoice(1, "serial: the temporary file's disk filled up",
                              jobs.temp_dir, jobs.temp_bytes, jobs.temp_free_bytes, str(full))
        warnings, items_total = run.serial(archive)
        return fallback, warnings, items_total


@dataclass(frozen=True)
class _Run:
    """One pg_restore run's settings: serially from a stream, or in parallel from a file."""

    pg_restore: str
    options: list[str]
    env: Mapping[str, str]
    dsn: str
    target: ConnectionInfo
    progress: ProgressCallback | None

    def serial(self, archive: ArchiveSource) -> tuple[list[str], int]:
        """Streamed into stdin, in one transaction; the warnings and the items restored."""
        listing = [self.pg_restore, "--list", "--format=custom", *self.options]
        items_total = _count_items(listing, self.env, archive, self.target)
        restore = [
            self.pg_restore, "--format=custom", "--exit-on-error", "--single-transaction",
            "--verbose", "--no-password", f"--dbname={self.dsn}", *self.options,
        ]
        return _restore(restore, self.env, archive, self.target, self.progress,
                        items_total), items_total

    def unpacking(self, _chunk_size: int) -> None:
        """Progress while the temporary file is written (raising from it cancels)."""
        if self.progress is not None:
            self.progress(RestoreProgress(0, 0, UNPACKING))

    def parallel(self, path: str, jobs: int) -> tuple[list[str], int]:
        """``pg_restore -j jobs`` over the archive file ``path``."""
        listing = [self.pg_restore, "--list", "--format=custom", *self.options, path]
        items_total = _count_items(listing, self.env, None, self.target)
        restore = [
            self.pg_restore, "--format=custom", "--exit-on-error", f"--jobs={jobs}",
            "--verbose", "--no-password", f"--dbname={self.dsn}", *self.options, path,
        ]
        return _restore(restore, self.env, None, self.target, self.progress,
                        items_total), items_total


def _throttled(callback: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """``callback`` called at most every PROGRESS_INTERVAL seconds."""
    if callback is None:
        return None
    last = float("-inf")

    def call(chunk_size: int) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_INTERVAL:
            last = time.monotonic()
            callback(chunk_size)

    return call


class TempSpaceFull(RestoreError):
    """The disk of the temporary file filled up while it was written (it is deleted)."""


@contextmanager
def uncompressed_copy(
    archive: ArchiveSource, directory: str, on_chunk: Callable[[int], None] | None = None
) -> Iterator[str]:
    """The archive decrypted and decompressed into a file in ``directory`` (mode 0600),
    for pg_restore to seek in; the file is deleted when the block exits, however it
    exits. The data offsets pg_dump could not write into a pipe are filled in (see
    :mod:`pgbackup.archive_offsets`). TempSpaceFull when the disk fills up while it is
    written."""
    with tempfile.NamedTemporaryFile(dir=directory, prefix=TEMP_PREFIX,
                                     suffix=".dump") as handle:
        try:
            with archive.open() as source:
                copy_stream(source, handle, _throttled(on_chunk))
            handle.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise TempSpaceFull(
                f"restored serially: {directory} filled up while the archive was written "
                "there for a parallel restore") from None
        add_data_offsets(handle.name)
        yield handle.name


def restore_into_new_database(
    maintenance: ConnectionInfo,
    name: str,
    storage: Storage,
    manifest: Manifest,
    like: str | None = None,
    **restore_kwargs: Any,
) -> RestoreOutcome:
    """Create database ``name`` on ``maintenance``'s server and restore into it.

    Refuses a name that exists. ``like`` names a database whose owner, encoding and locale
    the new one copies. On any failure the new database is dropped again, then the error is
    re-raised. ``restore_kwargs`` go to :func:`restore_archive`.
    """
    with new_database(maintenance, name, like) as target:
        return restore_archive(target, storage, manifest, **restore_kwargs)


@contextmanager
def new_database(
    maintenance: ConnectionInfo, name: str, like: str | None = None
) -> Iterator[ConnectionInfo]:
    """Create database ``name`` (refused if it exists; ``like`` as for
    :func:`restore_into_new_database`) and yield a connection to it. Whatever the block
    raises, the database is dropped again, then the error re-raised."""
    validate_database_name(name)
    try:
        if database_exists(maintenance, name):
            raise RestoreError(f"database {name} already exists")
        create_database(maintenance, name, like)
    except psycopg.errors.DuplicateDatabase:
        raise RestoreError(f"database {name} already exists") from None
    except psycopg.Error as exc:
        raise RestoreError(
            f"cannot create database {name}: {maintenance.redact_text(str(exc).strip())}"
        ) from None
    try:
        yield maintenance.for_database(name)
    except BaseException as exc:
        try:
            drop_database(maintenance, name)
        except psycopg.Error as drop_error:
            reason = maintenance.redact_text(str(drop_error).strip())
            exc.add_note(f"the new database {name} could not be dropped: {reason}")
        raise


def check_artifact(storage: Storage, manifest: Manifest) -> None:
    """Refuse an artifact that is missing, or not the file its manifest describes."""
    _check_size(storage, manifest)
    with _artifact_missing(manifest), storage.open_read(manifest.artifact) as handle:
        sha256 = sha256_of(handle)
    _check_sha256(manifest, sha256)


def checked_archive_size(
    storage: Storage, manifest: Manifest, identities: Sequence[Identity] | None = None
) -> int:
    """:func:`check_artifact`, and in the same read the size of the archive inside the
    artifact (decrypted, decompressed): what a parallel restore's temporary file takes,
    for a backup whose manifest does not record it (``archive_size``, since 2026-12).
    A broken artifact is reported as not matching its manifest when it does not."""
    _check_size(storage, manifest)
    problem = None
    with _artifact_missing(manifest), storage.open_read(manifest.artifact) as handle:
        stored = HashingReader(handle)
        try:
            size = _archive_size(stored, manifest, identities)
        except (zstandard.ZstdError, DecryptionError) as exc:
            size, problem = 0, f"cannot read {manifest.artifact}: {exc}"
        while stored.read(CHUNK_SIZE):  # what a failed decompression left unread
            pass
    _check_sha256(manifest, stored.hexdigest())
    if problem:
        raise RestoreError(problem)
    return size


def _archive_size(
    stored: Readable, manifest: Manifest, identities: Sequence[Identity] | None
) -> int:
    with decrypted(stored, manifest, identities) as plain, \
            archive_reader(plain, manifest.compression) as reader:
        size = 0
        while chunk := reader.read(CHUNK_SIZE):
            size += len(chunk)
        return size


@contextmanager
def _artifact_missing(manifest: Manifest) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise RestoreError(f"artifact {manifest.artifact} is missing from storage") from None


def _check_size(storage: Storage, manifest: Manifest) -> None:
    with _artifact_missing(manifest):
        size = storage.size(manifest.artifact)
    if size != manifest.size:
        raise RestoreError(
            f"artifact {manifest.artifact} is {size} bytes but its manifest says "
            f"{manifest.size}: it is truncated or was altered"
        )


def _check_sha256(manifest: Manifest, sha256: str) -> None:
    if sha256 != manifest.sha256:
        raise RestoreError(
            f"artifact {manifest.artifact} does not match its manifest (sha256 {sha256}, "
            f"expected {manifest.sha256}): it is corrupt or was altered"
        )


def _count_items(
    args: list[str], env: Mapping[str, str], archive: ArchiveSource | None,
    target: ConnectionInfo,
) -> int:
    """The number of items pg_restore will restore: the lines of ``pg_restore --list``
    (which reads only the archive's table of contents) that are not comments. Without
    ``archive``, pg_restore reads the file ``args`` name."""
    with tempfile.TemporaryFile() as listing:
        with _running(args, env, stdout=listing) as (process, log):
            _feed_from(archive, process)
            _check_exit(process, log, target, "pg_restore --list")
        listing.seek(0)
        return sum(1 for line in listing if line.strip() and not line.startswith(b";"))


def _restore(
    args: list[str], env: Mapping[str, str], archive: ArchiveSource | None,
    target: ConnectionInfo, progress: ProgressCallback | None, items_total: int,
) -> list[str]:
    """Run the restore proper (without ``archive``: from the file ``args`` name); returns
    its warnings."""
    with _running(args, env) as (process, log):
        reporter = _ProgressReporter(progress, log, items_total)
        reporter.tick()
        _feed_from(archive, process, reporter.tick)
        while not _exited_within(process, PROGRESS_INTERVAL):
            reporter.tick()  # indexes and constraints come after the last byte is read
        _check_exit(process, log, target, "pg_restore")
        reporter.finish()
    return [target.redact_text(warning) for warning in log.warnings]


def _feed_from(
    archive: ArchiveSource | None, process: subprocess.Popen[bytes],
    on_chunk: Callable[[int], None] | None = None,
) -> None:
    """Stream ``archive`` into the process's stdin; without one, close stdin at once."""
    if archive is None:
        assert process.stdin is not None
        process.stdin.close()
        return
    with archive.open() as source:
        _feed(source, process, on_chunk)


def _feed(
    source: Readable, process: subprocess.Popen[bytes],
    on_chunk: Callable[[int], None] | None = None,
) -> None:
    """Copy ``source`` into the process's stdin, then close it (end of archive).

    A process that stops reading (``--list`` has what it needs, or an error) ends the copy
    quietly: its exit status tells which. On an exception stdin stays open, so pg_restore
    is killed by :func:`_running` before it could take a cut-off archive for a whole one.
    """
    assert process.stdin is not None
    try:
        copy_stream(source, process.stdin, on_chunk)
        process.stdin.close()
    except BrokenPipeError:
        pass


def _exited_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _check_exit(
    process: subprocess.Popen[bytes], log: _RestoreLog, target: ConnectionInfo, what: str
) -> None:
    returncode = process.wait()
    log.join()
    if returncode != 0:
        detail = target.redact_text(log.failure_text())
        raise RestoreError(f"{what} failed with exit status {returncode}:\n{detail}")


@contextmanager
def _running(
    args: list[str], env: Mapping[str, str], stdout: IO[bytes] | int = subprocess.DEVNULL
) -> Iterator[tuple[subprocess.Popen[bytes], _RestoreLog]]:
    """Start ``args`` with stdin and stderr piped; on exit the process is reaped and its
    pipes closed. If it is still running (the block failed), its whole process group is
    killed first, so neither it nor a wrapper script's children outlive the block. If the
    calling process dies instead, the kernel kills the process: see :mod:`pgbackup.processes`."""
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE,
            env=dict(env), start_new_session=True, preexec_fn=die_with_parent(),
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise RestoreError(
            f"pg_restore not found: {args[0]!r} is not an executable on PATH; install the "
            "PostgreSQL client tools (same major version as the server, or newer)"
        ) from exc
    assert process.stdin is not None and process.stderr is not None
    log = _RestoreLog(process.stderr)
    try:
        yield process, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.join()
        with suppress(BrokenPipeError):  # unsent data in the buffer of a dead reader's pipe
            process.stdin.close()
        process.stderr.close()
