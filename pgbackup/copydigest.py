"""Row counts and content digests of every table, read from pg_dump's archive as it streams.

A full backup's archive is pg_dump's custom format taken uncompressed (``-Fc -Z0``): a
header, the table of contents (TOC), then one data block per TOC entry with data. A TABLE
DATA block holds the table's rows exactly as ``COPY ... TO STDOUT`` printed them, one text
line per row (newlines, tabs and backslashes inside values are escaped, so a raw newline
only ends a row). :class:`CopyDigester` is fed the archive's bytes in pieces of any size as
they flow to storage and, per TABLE DATA entry, counts the rows and sums a 64-bit xxh3
hash of each row's line (without its newline) modulo 2**64: a digest that depends only on
the multiset of rows, not on their order, on the physical layout or on how the stream was
cut. Nothing is kept beyond the piece being fed and one partial row or chunk header (one
TOC entry while the TOC is read); large objects are skipped.

Both sides of a comparison run pg_dump, so they see the same text: a restored copy read back
with ``pg_dump -Fc -Z0 --data-only`` (:func:`pgbackup.pgdump.pinned` fixes the settings
pg_dump leaves to the session) gives the same digest as the backup's own stream. Generated
columns are left out of pg_dump's COPY on both sides, so they are not part of the digest.

The layout follows PostgreSQL's ``src/bin/pg_dump/pg_backup_archiver.c`` (ReadHead, ReadToc,
ReadInt, ReadStr, ReadOffset) and ``pg_backup_custom.c`` (_ReadExtraToc, the data blocks:
a block type byte, the entry's dump id, then chunks of ``int length + bytes`` up to a length
of 0; a blobs block holds ``oid, chunks`` per large object up to an oid of 0). Archive
versions 1.14 to 1.16 (pg_dump 12 to 17) are read; the tests run pg_dump 15 (1.14), the
others' header fields (1.15: a compression byte, 1.16: a TOC entry's relkind) follow the
source. pg_dump writes one chunk per row, so :meth:`CopyDigester._rows_fast` reads runs of
such chunks at C speed; any other cut takes the general path, with the same result.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import repeat

from xxhash import xxh3_64_intdigest

from pgbackup.connection import ConnectionInfo
from pgbackup.errors import BackupError
from pgbackup.manifest import TableInfo
from pgbackup.pgdump import pinned, running
from pgbackup.streams import copy_stream

DIGEST_PREFIX = "copy-xxh3:"
SUPPORTED_VERSIONS = ((1, 14), (1, 15), (1, 16))
_MAGIC = b"PGDMP"
_FORMAT_CUSTOM = 1
_BLOCK_DATA = 1
_BLOCK_BLOBS = 3
_MASK = 2**64 - 1
_END_OF_DATA = b"\\."  # the line pg_dump writes after a table's rows
# pg_dump writes one chunk per COPY row: sign byte 0, then the length (of the row and its
# newline) as 4 little-endian bytes, when its ints are 4 bytes wide (checked in the header).
_CHUNK_HEADER = struct.Struct("<Bi")
# The header of a one-row chunk, by the size of the row with its header (without its
# newline); longer rows are few per MB and take the general path.
_ONE_ROW_HEADERS = {size: _CHUNK_HEADER.pack(0, size - _CHUNK_HEADER.size + 1)
                    for size in range(_CHUNK_HEADER.size, 8192)}
_ROW_OF = operator.itemgetter(slice(_CHUNK_HEADER.size, None))


class ArchiveFormatError(ValueError):
    """The stream is not an uncompressed custom-format archive this module can read."""


class UnsupportedArchive(ArchiveFormatError):
    """An archive version the parser does not know: a pg_dump newer than it."""


@dataclass(frozen=True)
class TableDigest:
    """One TABLE DATA entry's rows and digest (the sum of the rows' hashes mod 2**64)."""

    rows: int
    digest: int

    @property
    def checksum(self) -> str:
        """The manifest's form: ``copy-xxh3:`` and 16 hex digits."""
        return f"{DIGEST_PREFIX}{self.digest:016x}"


def is_stream_checksum(checksum: str | None) -> bool:
    """Whether a manifest's table checksum is a digest of the dump stream (else: none, or
    an older server-side ``hashtextextended`` sum, a plain decimal)."""
    return checksum is not None and checksum.startswith(DIGEST_PREFIX)


class _Short(Exception):
    """Not enough bytes buffered yet for the item being read."""


class _Reader:
    """Reads pg_dump's ints, strings and offsets from ``data`` at ``pos``; raises _Short at
    the end so the caller can retry the whole item once more bytes have come."""

    def __init__(self, data: bytes, pos: int, int_size: int, off_size: int) -> None:
        self.data, self.pos = data, pos
        self.int_size, self.off_size = int_size, off_size

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise _Short
        value, self.pos = self.data[self.pos:end], end
        return value

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        """ReadInt: a sign byte, then int_size bytes, little-endian."""
        raw = self.take(1 + self.int_size)
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def str(self) -> str | None:
        """ReadStr: an int length (negative: NULL), then the bytes."""
        length = self.int()
        return None if length < 0 else self.take(length).decode("utf-8", "replace")

    def offset(self) -> None:
        """ReadOffset: a flag byte, then off_size bytes (the data's position: unused)."""
        self.take(1 + self.off_size)


@dataclass
class _Table:
    """The rows of the data block being read: counted, and hashed when ``hashing``."""

    name: tuple[str, str] | None  # None: not a TABLE DATA entry (read, not recorded)
    rows: int = 0
    total: int = 0
    ended: bool = False  # its end-of-data line was read


class _Pieces:
    """A buffer from ``base`` to its last newline, split at newlines, and which pieces are
    a one-row chunk: a header giving the piece's size plus its newline, then the row. The
    cursor (``index``, ``pos``) walks it forward."""

    def __init__(self, buf: bytes, base: int) -> None:
        self.buf = buf
        end = buf.rfind(b"\n", base) + 1
        self.pieces = buf[base:end].split(b"\n") if end > base else [b""]
        self.pieces.pop()  # after the last newline: empty
        self.sizes = list(map(len, self.pieces))
        headers = map(_ONE_ROW_HEADERS.get, self.sizes, repeat(()))  # (): never a prefix
        self.valid = list(map(bytes.startswith, self.pieces, headers))
        self.index, self.pos, self.end = 0, base, end

    def covers(self, buf: bytes, pos: int) -> bool:
        return buf is self.buf and self.pos <= pos < self.end

    def seek(self, pos: int) -> bool:
        """Move the cursor to the piece starting at ``pos``; False if ``pos`` is inside one
        (the cursor then stops at the next)."""
        while self.pos < pos:
            self.pos += self.sizes[self.index] + 1
            self.index += 1
        return self.pos == pos

    def run(self) -> list[bytes]:
        """The run of one-row chunks at the cursor, which moves past them."""
        start = self.index
        try:
            stop = self.valid.index(False, start)
        except ValueError:
            stop = len(self.valid)
        self.index = stop
        self.pos += sum(self.sizes[start:stop]) + stop - start
        return self.pieces[start:stop]


class CopyDigester:
    """Feed it an archive's bytes in order (:meth:`feed`), then :meth:`finish` for every
    TABLE DATA entry's :class:`TableDigest`, by (schema, table). With ``hashing`` off, rows
    are counted only (their digest stays 0). Raises ArchiveFormatError.

    An archive version it does not know is not an error while feeding: it sets
    ``unsupported`` and reads no further, so the stream it watches goes on (a newer pg_dump
    must not stop backups); :meth:`finish` raises then."""

    def __init__(self, hashing: bool = True) -> None:
        self._hashing = hashing
        self._buf = b""
        self._pos = 0
        self._step = self._read_header
        self._int_size = self._off_size = 0
        self._version = (0, 0)
        self._toc_left = -1  # entries still to read; -1: count not read yet
        self._tables: dict[int, tuple[str, str]] = {}  # dump id -> (schema, table)
        self._done: dict[tuple[str, str], TableDigest] = {}
        self._table: _Table | None = None  # the data block being read
        self._chunk_left = 0  # payload bytes of the current chunk still to come
        self._partial = b""  # a row begun in an earlier chunk
        self._in_blob = False  # inside a large object's chunks (skipped)
        self._pieces: _Pieces | None = None  # the buffer split at newlines (_rows_fast)
        self.unsupported: str | None = None  # "archive version 1.17", once read

    def feed(self, data: bytes) -> None:
        if self.unsupported:
            return
        self._buf = self._buf[self._pos:] + data if self._pos < len(self._buf) else data
        self._pos = 0
        while self._step():
            pass

    def write(self, data: bytes) -> int:
        """:meth:`feed`, as a writer (pgbackup.streams.copy_stream)."""
        self.feed(data)
        return len(data)

    def finish(self) -> dict[tuple[str, str], TableDigest]:
        """The digests; raises ArchiveFormatError if the archive ended inside an item."""
        if self.unsupported:
            raise UnsupportedArchive(f"{self.unsupported} is not supported (1.14 to 1.16 "
                                     "are: pg_dump 12 to 17)")
        if self._step != self._read_block or self._pos < len(self._buf):
            raise ArchiveFormatError("the archive ends in the middle of an item")
        return dict(self._done)

    # Each step reads one item and returns True, or returns False to wait for more bytes.

    def _reader(self) -> _Reader:
        return _Reader(self._buf, self._pos, self._int_size, self._off_size)

    def _commit(self, reader: _Reader) -> bool:
        self._pos = reader.pos
        return True

    def _read_header(self) -> bool:
        reader = _Reader(self._buf, self._pos, 4, 4)
        try:
            if reader.take(5) != _MAGIC:
                raise ArchiveFormatError("not a pg_dump custom-format archive")
            major, minor, _revision = reader.take(3)
            self._version = (major, minor)
            if self._version not in SUPPORTED_VERSIONS:
                self.unsupported = f"archive version {major}.{minor}"
                return False
            reader.int_size = self._int_size = reader.byte()
            reader.off_size = self._off_size = reader.byte()
            if reader.byte() != _FORMAT_CUSTOM:
                raise ArchiveFormatError("not a pg_dump custom-format archive")
            compressed = reader.byte() if self._version >= (1, 15) else reader.int()
            if compressed:
                raise ArchiveFormatError("the archive is compressed (expected pg_dump -Z0)")
            for _ in range(7):  # creation time: sec, min, hour, day, month, year, isdst
                reader.int()
            for _ in range(3):  # database name, server version, pg_dump version
                reader.str()
        except _Short:
            return False
        self._step = self._read_toc
        return self._commit(reader)

    def _read_toc(self) -> bool:
        reader = self._reader()
        try:
            if self._toc_left < 0:
                self._toc_left = reader.int()
            elif self._toc_left > 0:
                self._read_toc_entry(reader)
                self._toc_left -= 1
            else:
                self._step = self._read_block
                return True
        except _Short:
            return False
        return self._commit(reader)

    def _read_toc_entry(self, reader: _Reader) -> None:
        dump_id, _had_dumper = reader.int(), reader.int()
        _table_oid, _oid, tag, desc = (reader.str() for _ in range(4))
        reader.int()  # section
        _defn, _drop, _copy, namespace, _tablespace, _tableam = (reader.str() for _ in range(6))
        if self._version >= (1, 16):
            reader.int()  # relkind
        _owner, _with_oids = reader.str(), reader.str()
        while reader.str() is not None:  # dependencies, up to a NULL
            pass
        reader.offset()  # _ReadExtraToc: where the data is (unknown when written to a pipe)
        if desc == "TABLE DATA" and namespace is not None and tag is not None:
            self._tables[dump_id] = (namespace, tag)

    def _read_block(self) -> bool:
        reader = self._reader()
        try:
            kind, dump_id = reader.byte(), reader.int()
        except _Short:
            return False
        if kind == _BLOCK_DATA:
            self._table = _Table(self._tables.get(dump_id))
            self._step = self._read_data
        elif kind == _BLOCK_BLOBS:
            self._step = self._read_blobs
        else:
            raise ArchiveFormatError(f"unknown data block type {kind}")
        return self._commit(reader)

    def _read_blobs(self) -> bool:
        """Large objects: ``oid, chunks..., 0`` each, up to an oid of 0; content skipped."""
        if self._in_blob:
            return self._skip_chunk()
        reader = self._reader()
        try:
            oid = reader.int()
        except _Short:
            return False
        self._in_blob = oid != 0
        if oid == 0:
            self._step = self._read_block
        return self._commit(reader)

    def _skip_chunk(self) -> bool:
        """One step through a large object's chunks; its end (length 0) ends the blob."""
        if self._chunk_left:
            taken = min(self._chunk_left, len(self._buf) - self._pos)
            self._pos += taken
            self._chunk_left -= taken
            return taken > 0
        reader = self._reader()
        try:
            length = reader.int()
        except _Short:
            return False
        self._chunk_left = length
        self._in_blob = length != 0
        return self._commit(reader)

    def _read_data(self) -> bool:
        """A TABLE DATA block: whole one-row chunks at C speed, anything else chunk by chunk."""
        if self._chunk_left:
            return self._take_payload()
        if not self._partial and self._rows_fast():
            return True
        reader = self._reader()
        try:
            length = reader.int()
        except _Short:
            return False
        if length == 0:
            self._end_table()
        self._chunk_left = length
        return self._commit(reader)

    def _rows_fast(self) -> bool:
        """Consume the run of chunks ahead that each hold exactly one row (pg_dump writes
        one chunk per row); False when the next chunk is not one.

        The buffer is split at newlines once per feed (:class:`_Pieces`); a piece is one
        such chunk when it starts with a header whose length is the rest of the piece plus
        its newline. A run starts at a real chunk header, so a run of such pieces is a run
        of real chunks. Checked and hashed with map() over C functions: no Python code runs
        per row. The general path reads the chunks that are not (a header holding a
        newline byte, the block's end, a chunk cut another way).
        """
        if self._int_size != 4:
            return False
        pieces = self._pieces
        if pieces is None or not pieces.covers(self._buf, self._pos):
            pieces = self._pieces = _Pieces(self._buf, self._pos)
        if not pieces.seek(self._pos):  # inside a piece: a block's first chunk
            return False
        run = pieces.run()
        if not run:
            return False
        self._add_rows(list(map(_ROW_OF, run)))
        self._pos = pieces.pos
        return True

    def _take_payload(self) -> bool:
        """The general path: rows cut anywhere, across chunks and feeds."""
        taken = min(self._chunk_left, len(self._buf) - self._pos)
        if taken == 0:
            return False
        payload = self._buf[self._pos:self._pos + taken]
        self._pos += taken
        self._chunk_left -= taken
        lines = (self._partial + payload).split(b"\n") if self._partial else payload.split(b"\n")
        self._partial = lines.pop()
        self._add_rows(lines)
        return True

    def _add_rows(self, rows: list[bytes]) -> None:
        """Count and hash ``rows``, up to pg_dump's end-of-data line ``\\.``: pg_dump 15
        to 17 end a table's data with ``\\.`` and two empty lines, which are not rows (a
        row's line is never ``\\.``: COPY doubles a value's backslashes)."""
        table = self._table
        assert table is not None
        if table.ended or _END_OF_DATA in rows:
            start = 0 if table.ended else rows.index(_END_OF_DATA) + 1
            if any(rows[start:]):
                raise ArchiveFormatError("a table's data goes on after its end-of-data line")
            rows = [] if table.ended else rows[:start - 1]
            table.ended = True
        table.rows += len(rows)
        if self._hashing and table.name is not None:
            table.total += sum(map(xxh3_64_intdigest, rows))

    def _end_table(self) -> None:
        table = self._table
        assert table is not None
        if self._partial:
            raise ArchiveFormatError("a table's data ends inside a row")
        if table.name is not None:
            self._done[table.name] = TableDigest(table.rows, table.total & _MASK)
        self._table = None
        self._step = self._read_block


def stream_tables(listed: list[TableInfo], digests: Mapping[tuple[str, str], TableDigest],
                  checksums: bool) -> list[TableInfo]:
    """``listed`` (the snapshot's tables) with each one's rows, and its checksum when
    ``checksums``, from its TABLE DATA entry.

    A listed table without one would be in the backup without its content, unproven:
    ArchiveFormatError names them (pg_dump dumps every listed table's data, short of an
    option we do not pass, so this is a bug to report, not a state to record).
    """
    missing = [table.qualified_name for table in listed
               if (table.schema, table.name) not in digests]
    if missing:
        raise ArchiveFormatError(f"pg_dump wrote no data for {', '.join(missing)}")
    return [replace(table, rows=(found := digests[table.schema, table.name]).rows,
                    checksum=found.checksum if checksums else None) for table in listed]


def dump_digests(conn: ConnectionInfo, pg_dump: str = "pg_dump"
                 ) -> dict[tuple[str, str], TableDigest]:
    """Every table's digest in ``conn``'s database as it is now, read back with
    ``pg_dump -Fc -Z0 --data-only`` the way a backup's stream is read (same pinned
    settings): a restored copy gives the digests its backup recorded. pg_dump only relays
    the server's COPY text, so another pg_dump version gives the same digests. Raises
    BackupError if pg_dump fails, ArchiveFormatError if its archive cannot be read
    (UnsupportedArchive if its version is too new)."""
    digester = CopyDigester()
    with conn.subprocess_env() as (tool_env, tool_dsn):
        env, dsn = pinned(tool_env, tool_dsn)
        args = [pg_dump, "--format=custom", "--compress=0", "--data-only", "--no-password",
                f"--dbname={dsn}"]
        with running(args, env) as (process, stderr):
            assert process.stdout is not None  # started with stdout=PIPE
            copy_stream(process.stdout, digester)
            returncode = process.wait()
            stderr.join()
            if returncode != 0:
                detail = conn.redact_text(stderr.failure_text())
                raise BackupError(f"pg_dump failed with exit status {returncode}:\n{detail}")
    return digester.finish()
