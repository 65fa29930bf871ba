"""Restoring a backup: the artifact streamed into pg_restore, all or nothing.

- **Checked first.** The artifact must have the size and SHA-256 of its manifest before
  pg_restore is started, so a truncated or altered file restores nothing.
- **Streamed.** It is decrypted (age) and decompressed on the fly into pg_restore's stdin;
  there is never a plaintext or uncompressed copy on disk.
- **All or nothing.** pg_restore runs with ``--single-transaction --exit-on-error``: a
  restore that fails at any point, or is cancelled (pg_restore is killed), commits nothing.
- **No password in argv.** As for pg_dump, it reaches pg_restore through a temporary
  passfile only, and it is masked in every error message.

To replace a live database, restore into a new one (:func:`restore_into_new_database`),
check it, then swap it in with :func:`pgbackup.dbadmin.swap_databases`.
"""

from __future__ import annotations

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

from pgbackup.archive import ArchiveSource, missing_identities
from pgbackup.connection import ConnectionInfo
from pgbackup.dbadmin import (
    create_database,
    database_exists,
    drop_database,
    validate_database_name,
)
from pgbackup.encryption import Identity
from pgbackup.manifest import Manifest
from pgbackup.processes import die_with_parent
from pgbackup.storage import Storage
from pgbackup.streams import Readable, copy_stream, sha256_of

PROGRESS_INTERVAL = 0.5
STDERR_LINES_KEPT = 200
MAX_WARNINGS = 100
_ERROR_LINES_SHOWN = 20
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
) -> RestoreOutcome:
    """Restore the backup ``manifest`` describes into ``target``'s (existing) database.

    ``no_owner`` and ``no_acl`` skip ownership and GRANTs (``--no-owner``,
    ``--no-privileges``), for a server without the original roles. An encrypted backup
    needs ``identities`` (age) holding one of its keys. Raising from ``progress`` cancels
    the restore. Whatever it raises (RestoreError, or what ``progress`` raised), nothing
    was committed, unless ``progress`` raised at its final call, which comes after
    pg_restore has committed.
    """
    started = time.monotonic()
    if problem := missing_identities(manifest, identities):
        raise RestoreError(problem)
    check_artifact(storage, manifest)
    archive = ArchiveSource(storage, manifest, identities, RestoreError)
    options = [*(["--no-owner"] if no_owner else []), *(["--no-privileges"] if no_acl else [])]
    with target.subprocess_env() as (env, dsn):
        listing = [pg_restore, "--list", "--format=custom", *options]
        items_total = _count_items(listing, env, archive, target)
        restore = [
            pg_restore, "--format=custom", "--exit-on-error", "--single-transaction",
            "--verbose", "--no-password", f"--dbname={dsn}", *options,
        ]
        warnings = _restore(restore, env, archive, target, progress, items_total)
    duration_ms = round((time.monotonic() - started) * 1000)
    return RestoreOutcome(items_total, duration_ms, warnings)


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
    name = manifest.artifact
    try:
        size = storage.size(name)
        if size != manifest.size:
            raise RestoreError(
                f"artifact {name} is {size} bytes but its manifest says {manifest.size}: "
                "it is truncated or was altered"
            )
        with storage.open_read(name) as handle:
            sha256 = sha256_of(handle)
    except FileNotFoundError:
        raise RestoreError(f"artifact {name} is missing from storage") from None
    if sha256 != manifest.sha256:
        raise RestoreError(
            f"artifact {name} does not match its manifest (sha256 {sha256}, expected "
            f"{manifest.sha256}): it is corrupt or was altered"
        )


def _count_items(
    args: list[str], env: Mapping[str, str], archive: ArchiveSource, target: ConnectionInfo
) -> int:
    """The number of items pg_restore will restore: the lines of ``pg_restore --list``
    (which reads only the archive's table of contents) that are not comments."""
    with tempfile.TemporaryFile() as listing:
        with _running(args, env, stdout=listing) as (process, log):
            with archive.open() as source:
                _feed(source, process)
            _check_exit(process, log, target, "pg_restore --list")
        listing.seek(0)
        return sum(1 for line in listing if line.strip() and not line.startswith(b";"))


def _restore(
    args: list[str], env: Mapping[str, str], archive: ArchiveSource, target: ConnectionInfo,
    progress: ProgressCallback | None, items_total: int,
) -> list[str]:
    """Run the restore proper; returns its warnings."""
    with _running(args, env) as (process, log):
        reporter = _ProgressReporter(progress, log, items_total)
        reporter.tick()
        with archive.open() as source:
            _feed(source, process, reporter.tick)
        while not _exited_within(process, PROGRESS_INTERVAL):
            reporter.tick()  # indexes and constraints come after the last byte is read
        _check_exit(process, log, target, "pg_restore")
        reporter.finish()
    return [target.redact_text(warning) for warning in log.warnings]


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
