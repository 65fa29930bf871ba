"""Restoring a chain: its full backup, then its incrementals replayed in order, to the end
or to a moment (point in time).

An incremental is a psql script (layout in :mod:`pgbackup.script_format`). It is replayed
by stock ``psql``, fed line by line through :func:`replay_lines`, the point-in-time filter:
it takes the transactions in commit order up to the first one committed after the moment,
and nothing after it (never a later one past a skipped one), so the copy always holds a
state the source went through. Once one incremental stopped early, the chain's later ones
are not replayed at all.

The target is a new, empty database the caller created. A failure can leave it holding
part of the chain (each replayed transaction commits on its own): the caller drops it.
Replay needs a superuser (the script sets ``session_replication_role``).
"""

from __future__ import annotations

import codecs
import os
import re
import signal
import subprocess
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime

from pgbackup.archive import ArchiveSource, missing_identities
from pgbackup.chains import ChainError, Link, check_chain, links_for
from pgbackup.connection import ConnectionInfo
from pgbackup.encryption import Identity
from pgbackup.manifest import Manifest
from pgbackup.pgdump import StderrCollector
from pgbackup.processes import die_with_parent
from pgbackup.replay_sql import parse_xact_comment
from pgbackup.restore import (
    ProgressCallback,
    RestoreError,
    RestoreOutcome,
    check_artifact,
    restore_archive,
)
from pgbackup.script_format import END_MARKER, SEQUENCES_MARKER, TABLES_MARKER
from pgbackup.storage import Storage
from pgbackup.streams import CHUNK_SIZE, Readable

_HEADER_PREFIX = "-- pgbackup incremental "
_OWN_COMMENT = "-- pgbackup "
_COPY_START = re.compile(r"COPY .* FROM stdin;\n")
_COPY_END = "\\.\n"
_PSQL_FAILURE = re.compile(r"(?:ERROR|FATAL|PANIC):|psql: error:")
_FAILURE_LINES_SHOWN = 5


class ChainRestoreError(RuntimeError):
    """A chain could not be restored as asked, in one sentence without a password. The
    target may hold part of it."""


@dataclass(frozen=True)
class ReplayReport:
    """What the replay of one incremental took: ``transactions_skipped`` counts those
    committed after the moment (and any after them); ``tables_copied_applied`` is False
    when it stopped early, so its tables copied whole kept their earlier state."""

    transactions_applied: int
    transactions_skipped: int
    last_commit_applied: datetime | None
    tables_copied_applied: bool

    @property
    def stopped_early(self) -> bool:
        return self.transactions_skipped > 0


@dataclass(frozen=True)
class ChainRestoreReport:
    """The full's restore, then each incremental replayed (by backup id, in chain order).
    Incrementals after one that stopped early are not replayed and not listed."""

    full: RestoreOutcome
    replayed: dict[str, ReplayReport] = field(default_factory=dict)


@dataclass
class _Filter:
    """The state of :func:`replay_lines` between lines."""

    until: datetime | None
    section: str = "header"  # header, preamble, transactions, tables, sequences, end
    stopped: bool = False  # a transaction committed after ``until`` was met
    taking: bool = True  # the lines of the current block go through
    in_copy: bool = False
    applied: int = 0
    skipped: int = 0
    last_commit: datetime | None = None

    def read(self, line: str) -> None:
        """Move on by one line outside COPY data: sets ``taking`` for it."""
        if self.section == "header":
            if not line.startswith(_HEADER_PREFIX):
                raise ChainRestoreError("the script does not start with an incremental's "
                                        "header: it is not a pgbackup incremental")
            self.section = "preamble"
        elif self.section == "end":
            raise ChainRestoreError("the script goes on after its end marker")
        elif line.startswith(_OWN_COMMENT):
            self._marker(line)
        elif _COPY_START.fullmatch(line):
            self.in_copy = True

    def _marker(self, line: str) -> None:
        if line == TABLES_MARKER:
            self._enter("tables", ("preamble", "transactions"))
            self.taking = not self.stopped
        elif line == SEQUENCES_MARKER:
            self._enter("sequences", ("preamble", "transactions", "tables"))
            self.taking = True
        elif line == END_MARKER:
            self._enter("end", ("sequences",))
            self.taking = True
        elif (commit := parse_xact_comment(line)) is not None:
            self._enter("transactions", ("preamble", "transactions"))
            if self.until is not None and commit.committed_at > self.until:
                self.stopped = True
            self.taking = not self.stopped
            if self.taking:
                self.applied += 1
                self.last_commit = commit.committed_at
            else:
                self.skipped += 1
        else:
            raise ChainRestoreError(f"unknown pgbackup line in the script: {line[:80]!r}")

    def _enter(self, section: str, after: tuple[str, ...]) -> None:
        if self.section not in after:
            raise ChainRestoreError(f"the script's {section} section comes after its "
                                    f"{self.section} section: it is not well formed")
        self.section = section

    @staticmethod
    def truncated() -> ChainRestoreError:
        return ChainRestoreError(f"the script ends without {END_MARKER.strip()!r}: "
                                 "it is truncated")

    def report(self) -> ReplayReport:
        if self.section != "end" or self.in_copy:
            raise self.truncated()
        return ReplayReport(self.applied, self.skipped, self.last_commit, not self.stopped)


def replay_lines(
    lines: Iterable[str], until: datetime | None
) -> Generator[str, None, ReplayReport]:
    """The lines of an incremental's script that a replay to ``until`` (aware; None for
    all) runs; the generator returns its ReplayReport. Streamed, line by line.

    Raises ChainRestoreError, possibly after yielding lines, for a script that is not an
    incremental's, is out of order, or is truncated (no end marker): the lines already
    yielded must then not be taken for a replay.
    """
    _check_aware(until)
    state = _Filter(until)
    for line in lines:
        if not line.endswith("\n"):  # every line of the layout ends with one
            raise state.truncated()
        if state.in_copy:
            state.in_copy = line != _COPY_END
        else:
            state.read(line)
        if state.taking:
            yield line
    return state.report()


def _check_aware(until: datetime | None) -> None:
    if until is not None and until.utcoffset() is None:
        raise ValueError("the moment to restore to needs a time zone")


def text_lines(source: Readable) -> Iterator[str]:
    """The UTF-8 lines of ``source``, each with its ``\\n`` (the last one may lack it), read
    in chunks: only one line at a time is held."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending: list[str] = []  # the start of a line that goes on in a later chunk
    while True:
        chunk = source.read(CHUNK_SIZE)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise ChainRestoreError(f"the script is not valid UTF-8: {exc.reason}") from None
        first, *complete = text.split("\n")
        pending.append(first)
        if complete:
            yield "".join(pending) + "\n"
            *middle, last = complete
            for line in middle:
                yield line + "\n"
            pending = [last]
        if not chunk:
            break
    if rest := "".join(pending):
        yield rest


def replay_incremental(
    target: ConnectionInfo, storage: Storage, manifest: Manifest,
    identities: Sequence[Identity] | None, until: datetime | None, psql: str = "psql",
) -> ReplayReport:
    """Replay the incremental ``manifest`` describes onto ``target``'s database (which
    holds its parent's state), up to ``until`` (None: all of it).

    The stored artifact must have its manifest's size and SHA-256 first (as for a full);
    age authenticates what it decrypts as it goes. Raises ChainRestoreError.
    """
    if manifest.type != "incremental":
        raise ChainRestoreError(f"backup {manifest.backup_id} is a {manifest.type} backup, "
                                "not an incremental")
    if problem := missing_identities(manifest, identities):
        raise ChainRestoreError(problem)
    try:
        check_artifact(storage, manifest)
    except RestoreError as exc:
        raise ChainRestoreError(str(exc)) from None
    archive = ArchiveSource(storage, manifest, identities, ChainRestoreError)
    with target.subprocess_env() as (env, dsn):
        args = [psql, "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1",
                "--file=-", f"--dbname={dsn}"]
        with _running_psql(args, env) as (process, stderr):
            with archive.open() as script:
                report = _feed(replay_lines(text_lines(script), until), process)
            # Only now, the archive read whole and authenticated: psql sees the end.
            _close_stdin(process)
            returncode = process.wait()
            stderr.join()
    if returncode != 0 or report is None:
        raise ChainRestoreError(f"replaying backup {manifest.backup_id} failed: psql exited "
                                f"with status {returncode}: "
                                f"{target.redact_text(_psql_failure(stderr))}")
    return report


def _feed(
    lines: Generator[str, None, ReplayReport], process: subprocess.Popen[bytes]
) -> ReplayReport | None:
    """Write the lines into psql's stdin; returns the filter's report, or None when psql
    stopped reading (it failed: its exit status tells). On an exception stdin stays open,
    so psql is killed before it could take a cut-off script for a whole one."""
    assert process.stdin is not None
    try:
        while True:
            process.stdin.write(next(lines).encode("utf-8"))
    except StopIteration as end:
        report: ReplayReport = end.value
        return report
    except BrokenPipeError:
        return None


def _close_stdin(process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    with suppress(BrokenPipeError):  # unsent data in the buffer of a psql that failed
        process.stdin.close()


def _psql_failure(stderr: StderrCollector) -> str:
    """psql's error line and the few after it (DETAIL, CONTEXT), else its last lines."""
    lines = list(stderr.lines)
    start = next((i for i, line in enumerate(lines) if _PSQL_FAILURE.search(line)), None)
    shown = lines[-_FAILURE_LINES_SHOWN:] if start is None else \
        lines[start:start + _FAILURE_LINES_SHOWN]
    return " ".join(line.strip() for line in shown) or "no error message"


@contextmanager
def _running_psql(
    args: list[str], env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], StderrCollector]]:
    """psql with stdin and stderr piped (its query output discarded); on exit it is
    reaped, and killed with its process group first if it is still running (the block
    failed). If this process dies, the kernel kills psql (pgbackup.processes)."""
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env, start_new_session=True, preexec_fn=die_with_parent(),
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise ChainRestoreError(
            f"psql not found: {args[0]!r} is not an executable on PATH; install the "
            "PostgreSQL client tools") from exc
    assert process.stdin is not None and process.stderr is not None
    stderr = StderrCollector(process.stderr)
    try:
        yield process, stderr
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        stderr.join()
        with suppress(BrokenPipeError):
            process.stdin.close()
        process.stderr.close()


def chain_links(manifests: Sequence[Manifest]) -> list[Link]:
    """The chain the manifests (full first) form, checked: unbroken, on one schema."""
    links = []
    fingerprints = set()
    for manifest in manifests:
        capture = manifest.capture
        if capture is None:
            raise ChainRestoreError(f"backup {manifest.backup_id} has no captured changes: "
                                    "it is not part of a chain")
        fingerprints.add(capture.schema_fingerprint)
        if len(fingerprints) > 1:
            raise ChainRestoreError(f"backup {manifest.backup_id} was taken on another schema "
                                    f"than {manifests[0].backup_id}: not the same chain")
        links.append(Link(manifest.backup_id, manifest.type, manifest.parent_id,
                          capture.start_lsn, capture.end_lsn, capture.consistent_at,
                          capture.covers_until))
    try:
        check_chain(links)
    except ChainError as exc:
        raise ChainRestoreError(str(exc)) from None
    return links


def restore_chain(
    target: ConnectionInfo, links: Sequence[tuple[Storage, Manifest]],
    identities: Sequence[Identity] | None, until: datetime | None, *,
    no_owner: bool = False, no_acl: bool = False, progress: ProgressCallback | None = None,
    pg_restore: str = "pg_restore", psql: str = "psql",
) -> ChainRestoreReport:
    """Restore the chain ``links`` (the full first, each with the storage holding it) into
    ``target``'s new, empty database: the full with pg_restore as any full backup
    (:func:`pgbackup.restore.restore_archive`; ``no_owner``, ``no_acl``, ``progress`` go
    to it), then the incrementals in order, to ``until`` (aware; None: to the chain's end).

    For a moment, only the incrementals up to the first that covers it are replayed
    (:func:`pgbackup.chains.links_for`); a moment outside the chain's reach is refused,
    naming its window. Every artifact needed is checked to be present with its manifest's
    size (and the keys to be given) before anything is restored; each is checked whole
    (SHA-256) just before its own restore. Raises ChainRestoreError (RestoreError from the
    full's restore).
    """
    _check_aware(until)
    chain = chain_links([manifest for _, manifest in links])
    needed = len(chain)
    if until is not None:
        try:
            needed = len(links_for(chain, until))
        except ChainError as exc:
            raise ChainRestoreError(str(exc)) from None
    for storage, manifest in links[:needed]:
        _check_present(storage, manifest, identities)
    storage, full = links[0]
    report = ChainRestoreReport(restore_archive(
        target, storage, full, no_owner=no_owner, no_acl=no_acl, progress=progress,
        pg_restore=pg_restore, identities=identities))
    for storage, manifest in links[1:needed]:
        replayed = replay_incremental(target, storage, manifest, identities, until, psql)
        report.replayed[manifest.backup_id] = replayed
        if replayed.stopped_early:
            break
    return report


def _check_present(
    storage: Storage, manifest: Manifest, identities: Sequence[Identity] | None
) -> None:
    """The cheap checks, before a restore starts: the keys, the artifact and its size."""
    if problem := missing_identities(manifest, identities):
        raise ChainRestoreError(problem)
    try:
        size = storage.size(manifest.artifact)
    except FileNotFoundError:
        raise ChainRestoreError(f"artifact {manifest.artifact} is missing from storage") from None
    if size != manifest.size:
        raise ChainRestoreError(f"artifact {manifest.artifact} is {size} bytes but its manifest "
                                f"says {manifest.size}: it is truncated or was altered")
