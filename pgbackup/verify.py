"""Verifying backups: the stored files against their manifest, tables against the manifest.

:func:`check_integrity` reads the artifact once, streaming: the same chunks are hashed,
decrypted when encrypted (age authenticates every chunk), decompressed (the zstd frame
checksum is verified) and piped into ``pg_restore --list``, which reads the archive's table
of contents without connecting to any database.
:func:`compare_tables` compares the manifest's tables with those of a restored copy.
"""

from __future__ import annotations

import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import zstandard

from pgbackup.archive import decrypted
from pgbackup.connection import tool_env
from pgbackup.encryption import Identity
from pgbackup.errors import DecryptionError
from pgbackup.ids import artifact_name
from pgbackup.manifest import (
    GlobalsFile,
    Manifest,
    ManifestError,
    TableInfo,
    authenticate,
    read_manifest,
    signature_key_id,
)
from pgbackup.processes import die_with_parent
from pgbackup.script_format import END_MARKER, header
from pgbackup.storage import Storage
from pgbackup.streams import CHUNK_SIZE, HashingReader, Readable

INTEGRITY = "integrity"
# Compressed bytes handed to the decompressor at a time: its output for one call is held
# whole, and zstd can expand a byte ~32,000-fold (runs of one byte), so this bounds memory
# (<= 128 MiB in the worst case, ~20 KiB for ordinary data) at no measurable cost.
_ZSTD_SLICE = 4096
_STDERR_LINES_KEPT = 5
NOT_DECRYPTED = ("not decrypted: no identity configured; the age layer, compression and "
                 "archive were not checked")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyResult:
    """The checks of one verification, in order. Data only: the app shapes it as JSON."""

    level: str
    checks: list[Check]
    warnings: list[str]
    checked_at: datetime  # aware, UTC

    @property
    def is_valid(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


def check_integrity(
    storage: Storage, backup_id: str, pg_restore: str = "pg_restore",
    identities: Sequence[Identity] | None = None, manifest_key: bytes | None = None,
) -> VerifyResult:
    """Check a stored backup, in order: ``manifest``, ``manifest-signature`` (only given a
    ``manifest_key``; fails only when forged), ``artifact-exists``, ``size``, then in
    one read of the artifact ``sha256``, for an encrypted backup ``decrypt`` and
    ``content-sha256``, then ``decompress`` and ``toc``. Stops early only when the later
    checks cannot run (no usable manifest, no artifact, no decryption).

    An encrypted backup without ``identities`` gets the checks up to ``sha256`` and a
    warning that the rest was not checked: a valid result then vouches for the stored
    bytes being those written, not for what they decrypt to."""
    manifest, manifest_check = _check_manifest(storage, backup_id)
    checks = [manifest_check]
    if manifest is not None:
        if manifest_key is not None:
            checks.append(check_signature(manifest, manifest_key))
        checks.append(_check_exists(storage, manifest))
        if checks[-1].ok:
            checks.append(_check_size(storage, manifest))
            checks.extend(_check_content(storage, manifest, pg_restore, identities))
        if manifest.globals is not None:
            checks.append(_check_globals(storage, manifest.globals))
    warnings = _warnings(manifest, identities) if manifest is not None else []
    return VerifyResult(INTEGRITY, checks, warnings, datetime.now(UTC))


# In a table's check whose rows were compared but not its content (pgbackup.recovery).
NOT_COMPARED = "content not compared"


def compare_tables(expected: list[TableInfo], actual: list[TableInfo]) -> list[Check]:
    """One check per table (named ``table public.actor``): present on both sides, same row
    count, same checksum (when ``expected`` has one). Without expected row counts
    (schema-only) a table must be present and empty."""
    found = {table.qualified_name: table for table in actual}
    wanted = {table.qualified_name: table for table in expected}
    checks = [_compare_table(table, found.get(name)) for name, table in wanted.items()]
    checks += [
        Check(f"table {name}", False, f"{name}: not in the backup, found in the restored copy")
        for name in found.keys() - wanted.keys()
    ]
    return sorted(checks, key=lambda check: check.name)


def _compare_table(expected: TableInfo, actual: TableInfo | None) -> Check:
    name = expected.qualified_name
    if actual is None:
        return Check(f"table {name}", False, f"{name}: missing from the restored copy")
    want_rows = 0 if expected.rows is None else expected.rows
    if actual.rows != want_rows:
        detail = f"{name}: {want_rows} rows expected, {actual.rows} found"
    elif expected.checksum is not None and actual.checksum is None:
        return Check(f"table {name}", True, f"{name}: {want_rows} rows; {NOT_COMPARED} "
                     "(pg_dump's archive could not be read back: see the worker's log)")
    elif expected.checksum is not None and actual.checksum != expected.checksum:
        detail = f"{name}: {want_rows} rows as expected, but their content differs (checksum)"
    else:
        return Check(f"table {name}", True, f"{name}: {_matched(expected, want_rows)}")
    return Check(f"table {name}", False, detail)


def _matched(expected: TableInfo, rows: int) -> str:
    if expected.rows is None:
        return "present and empty (schema-only)"
    return f"{rows} rows" + (", checksum matches" if expected.checksum is not None else "")


def _check_manifest(storage: Storage, backup_id: str) -> tuple[Manifest | None, Check]:
    try:
        manifest = read_manifest(storage, backup_id)
    except FileNotFoundError:
        return None, Check("manifest", False, "the manifest file is missing")
    except ManifestError as exc:
        return None, Check("manifest", False, str(exc))
    problem = mismatch(manifest, backup_id)
    if problem:
        return None, Check("manifest", False, problem)
    return manifest, Check("manifest", True, "readable, self-checksum matches")


def mismatch(manifest: Manifest, backup_id: str) -> str | None:
    """Why a well-formed manifest cannot describe ``backup_id``'s files, if it cannot."""
    if manifest.backup_id != backup_id:
        return f"the manifest of {backup_id} describes {manifest.backup_id}"
    expected = artifact_name(
        backup_id, manifest.compression == "zstd", encrypted=manifest.encryption is not None,
        kind=manifest.type,
    )
    if manifest.artifact != expected:
        return f"artifact {manifest.artifact} should be named {expected}"
    return None


def check_signature(manifest: Manifest, key: bytes) -> Check:
    """``manifest-signature``: failed only for a forged manifest. An unsigned one (written
    before manifests were signed) or one signed with another key passes, saying so: the
    other checks still tie the files to what the manifest says."""
    name = "manifest-signature"
    verdict = authenticate(manifest, key)
    if verdict == "authenticated":
        return Check(name, True, "signed with this install's manifest key")
    if verdict == "forged":
        return Check(name, False, "the signature does not match the manifest's content: it "
                     "was forged or changed after it was written")
    return Check(name, True, {
        "unsigned": "not checked: the manifest is not signed (written before manifests "
                    "were signed)",
        "foreign": f"not checked: signed with another key (key id "
                   f"{signature_key_id(manifest)}), not this install's manifest key",
    }[verdict])


def _check_globals(storage: Storage, saved: GlobalsFile) -> Check:
    """``globals``: the saved roles and settings file is there, as the manifest records it
    (its stored bytes; decrypting it is the restore's business)."""
    if not storage.exists(saved.file):
        return Check("globals", False, f"{saved.file} is missing")
    with storage.open_read(saved.file) as handle:
        stored = HashingReader(handle)
        while stored.read(CHUNK_SIZE):
            pass
    if (stored.bytes_read, stored.hexdigest()) != (saved.size, saved.sha256):
        return Check("globals", False, f"{saved.file}: {stored.bytes_read} bytes with SHA-256 "
                     f"{stored.hexdigest()}, the manifest says {saved.size} bytes with "
                     f"{saved.sha256}")
    return Check("globals", True, f"{saved.file}, {saved.size} bytes, SHA-256 matches")


def _check_exists(storage: Storage, manifest: Manifest) -> Check:
    if storage.exists(manifest.artifact):
        return Check("artifact-exists", True, manifest.artifact)
    return Check("artifact-exists", False, f"{manifest.artifact} is missing")


def _check_size(storage: Storage, manifest: Manifest) -> Check:
    size = storage.size(manifest.artifact)
    if size == manifest.size:
        return Check("size", True, f"{size} bytes")
    return Check("size", False, f"{size} bytes on disk, {manifest.size} in the manifest")


def _check_content(
    storage: Storage, manifest: Manifest, pg_restore: str,
    identities: Sequence[Identity] | None,
) -> list[Check]:
    """``sha256`` and what follows it, from one read of the artifact."""
    with storage.open_read(manifest.artifact) as handle:
        stored = HashingReader(handle)
        if manifest.encryption is None:
            inner = _check_archive(stored, manifest, pg_restore)
        elif identities:
            inner = _check_encrypted(stored, manifest, pg_restore, identities)
        else:
            inner = []
        while stored.read(CHUNK_SIZE):  # what decryption left unread
            pass
    return [_sha256_check("sha256", stored.hexdigest(), manifest.sha256), *inner]


def _check_encrypted(
    stored: Readable, manifest: Manifest, pg_restore: str, identities: Sequence[Identity]
) -> list[Check]:
    """``decrypt``, ``content-sha256``, then the archive's checks; only ``decrypt`` when
    decryption fails (what came out before is not the archive)."""
    assert manifest.content_sha256 is not None  # recorded with the encryption
    try:
        with decrypted(stored, manifest, identities) as plain:
            content = HashingReader(plain)
            archive = _check_archive(content, manifest, pg_restore)
    except DecryptionError as exc:
        return [Check("decrypt", False, str(exc))]
    return [
        Check("decrypt", True, f"{content.bytes_read} bytes decrypted, age authentication "
              "verified"),
        _sha256_check("content-sha256", content.hexdigest(), manifest.content_sha256),
        *archive,
    ]


def _check_archive(source: Readable, manifest: Manifest, pg_restore: str) -> list[Check]:
    """``decompress`` and ``toc`` (``script`` for an incremental's psql script), from one
    read of ``source`` (the stored archive)."""
    unpack = _Zstd() if manifest.compression == "zstd" else _Uncompressed()
    if manifest.dump_format == "sql":
        script = _ScriptCheck(manifest)
        while chunk := source.read(CHUNK_SIZE):
            for piece in unpack.feed(chunk):
                script.write(piece)
        return [unpack.check(), script.check()]
    with _toc_lister(pg_restore) as toc:
        while chunk := source.read(CHUNK_SIZE):
            for piece in unpack.feed(chunk):
                toc.write(piece)
    return [unpack.check(), toc.check(empty_database=not manifest.tables)]


class _ScriptCheck:
    """``script``: an incremental's script starts with its own header and ends with the end
    marker (pgbackup.script_format), so it is this backup's, and whole."""

    def __init__(self, manifest: Manifest) -> None:
        assert manifest.capture is not None and manifest.parent_id is not None
        self._header = header(manifest.backup_id, manifest.parent_id,
                              manifest.capture.start_lsn, manifest.capture.end_lsn).encode()
        self._head = b""
        self._tail = b""
        self._bytes = 0

    def write(self, data: bytes) -> None:
        self._bytes += len(data)
        if len(self._head) < len(self._header):
            self._head += data[:len(self._header) - len(self._head)]
        self._tail = (self._tail + data)[-len(END_MARKER):]

    def check(self) -> Check:
        if self._head != self._header:
            return Check("script", False, "the script does not start with this backup's header")
        if self._tail != END_MARKER.encode():
            return Check("script", False, "the script is cut short: its end marker is missing")
        return Check("script", True, f"{self._bytes} bytes, header and end marker in place")


def _sha256_check(name: str, actual: str, expected: str) -> Check:
    if actual == expected:
        return Check(name, True, actual)
    return Check(name, False, f"{actual} does not match the manifest's {expected}")


class _Uncompressed:
    def feed(self, chunk: bytes) -> Iterator[bytes]:
        yield chunk

    def check(self) -> Check:
        return Check("decompress", True, "stored uncompressed")


class _Zstd:
    """Decompresses one zstd frame chunk by chunk, verifying its content checksum."""

    def __init__(self) -> None:
        self._decompressor = zstandard.ZstdDecompressor().decompressobj()
        self._started = False
        self._error: str | None = None
        self._size = 0  # bytes decompressed
        self._trailing = 0  # bytes after the end of the frame

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """The decompressed pieces of ``chunk``; nothing more after an error."""
        view = memoryview(chunk)
        if not self._started:
            self._started = True
            self._error = _frame_header_problem(view)
        for start in range(0, len(view), _ZSTD_SLICE):
            if self._error is not None:
                return
            piece = view[start:start + _ZSTD_SLICE]
            if self._decompressor.eof:
                self._trailing += len(piece)
                continue
            try:
                output = self._decompressor.decompress(piece)
            except zstandard.ZstdError as exc:
                self._error = f"{exc} after {self._size} bytes"
                return
            self._size += len(output)
            if self._decompressor.eof:
                self._trailing += len(self._decompressor.unused_data)
            yield output

    def check(self) -> Check:
        if self._error is not None:
            return Check("decompress", False, self._error)
        if not self._decompressor.eof:
            return Check("decompress", False, f"the zstd stream is truncated: {self._size} "
                         "bytes decompressed before it ended inside the frame")
        if self._trailing:
            return Check("decompress", False, f"{self._trailing} bytes after the zstd frame")
        return Check("decompress", True, f"{self._size} bytes, zstd frame checksum verified")


def _frame_header_problem(start: memoryview) -> str | None:
    """Why the frame starting ``start`` is not one we wrote: it must carry a checksum."""
    try:
        has_checksum = zstandard.get_frame_parameters(start).has_checksum
    except zstandard.ZstdError as exc:
        return f"not a zstd frame: {exc}"
    return None if has_checksum else "the zstd frame has no content checksum"


class _TocLister:
    """``pg_restore --list`` reading the archive from stdin; counts the TOC entries.

    Its output is drained by threads, so writing to it cannot deadlock. It may exit before
    the archive ends (the TOC comes first): later writes are then dropped.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdin and process.stdout and process.stderr
        self._process = process
        self._stdin: IO[bytes] | None = process.stdin
        self._entries = 0
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)
        self._threads = [
            threading.Thread(target=self._count, args=(process.stdout,), daemon=True),
            threading.Thread(target=self._keep_stderr, args=(process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _count(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            if line.strip() and not line.startswith(b";"):
                self._entries += 1

    def _keep_stderr(self, stderr: IO[bytes]) -> None:
        for line in stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def write(self, data: bytes) -> None:
        if self._stdin is None:
            return
        try:
            self._stdin.write(data)
        except BrokenPipeError:  # pg_restore has read all it wanted, or died
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self._stdin is not None:
            stdin, self._stdin = self._stdin, None
            with suppress(BrokenPipeError):  # unflushed data it no longer wants
                stdin.close()

    def finish(self) -> None:
        """Close its stdin, wait for it to exit and for its output to be read."""
        self._close_stdin()
        self._process.wait()
        for thread in self._threads:
            thread.join()
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()

    def kill(self) -> None:
        self._process.kill()
        self.finish()

    def check(self, empty_database: bool = False) -> Check:
        """``empty_database``: the manifest lists no table, so an archive without TOC
        entries is what pg_dump writes for it (its header is still read and checked)."""
        returncode = self._process.returncode
        if returncode != 0:
            errors = "; ".join(self._stderr) or "no message"
            return Check("toc", False, f"pg_restore --list failed (exit status {returncode}): "
                         f"{errors}")
        if self._entries == 0:
            if empty_database:
                return Check("toc", True, "0 TOC entries: the database had no objects")
            return Check("toc", False, "pg_restore --list found no TOC entries")
        return Check("toc", True, f"{self._entries} TOC entries")


class _NoLister:
    """Stands in for a pg_restore that cannot be started."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def write(self, data: bytes) -> None:
        pass

    def check(self, empty_database: bool = False) -> Check:
        return Check("toc", False, self._reason)


@contextmanager
def _toc_lister(pg_restore: str) -> Iterator[_TocLister | _NoLister]:
    """A running ``pg_restore --list`` (killed if the block fails), or a _NoLister."""
    try:
        process = subprocess.Popen(
            [pg_restore, "--list", "--format=custom"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=CHUNK_SIZE, env=tool_env(),
            preexec_fn=die_with_parent(),
        )
    except OSError as exc:
        yield _NoLister(f"cannot run {pg_restore}: {exc.strerror or exc}")
        return
    lister = _TocLister(process)
    try:
        yield lister
    except BaseException:
        lister.kill()
        raise
    lister.finish()


def _warnings(manifest: Manifest, identities: Sequence[Identity] | None) -> list[str]:
    warnings = [NOT_DECRYPTED] if manifest.encryption is not None and not identities else []
    if manifest.type == "full" and any(t.checksum is None for t in manifest.tables):
        warnings.append(
            "no table checksums were recorded: a test restore can compare row counts only"
        )
    return warnings
