"""Data offsets for a custom-format archive that pg_dump wrote into a pipe.

pg_dump writes the table of contents first; into a file it can seek in, it goes back at
the end and records where each table's data block starts. Into a pipe (as every backup
is taken) it cannot, so the archive says "position not set". ``pg_restore --jobs`` then
makes each worker find a block by walking the blocks before it, chunk by chunk, and with
``-Z0`` each row is a chunk: on the generated shop at scale 30 that made ``-j 2`` 1.3 to
1.5 times slower than one job, where the same archive with offsets was as fast or faster.

:func:`add_data_offsets` fills them in, in place (each is a fixed-size field, so nothing
moves), as pg_dump would have. It only does so where it can be sure: an uncompressed
archive of a known version whose data blocks are plain COPY text (no NUL byte, so the
5-byte end-of-block marker cannot occur inside one) and that holds every block, in the
order of the TOC. Otherwise it changes nothing, and pg_restore walks the blocks as before.

The format is pg_dump's (src/bin/pg_dump/pg_backup_archiver.c ReadHead/ReadToc,
pg_backup_custom.c): integers are a sign byte and ``int_size`` little-endian bytes,
strings an integer length (-1: NULL) and the bytes. The header and TOC are read through a
buffered reader and the blocks scanned in chunks, so memory stays bounded whatever the size
of the archive (mapping it made a restore's memory grow by the archive's size).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"PGDMP"
_CUSTOM_FORMAT = 1
_OFFSET_NOT_SET, _OFFSET_SET = 1, 2
_BLOCK_DATA = 1
_KNOWN = ((1, 10, 0), (1, 16, 255))  # archive versions whose layout is read below
_CHUNK_SIZE = 1 << 20  # bytes read at a time when scanning for the data blocks


class _Unsure(Exception):
    """The archive is not one whose offsets can be set with certainty."""


@dataclass(frozen=True)
class _Pending:
    dump_id: int
    field: int  # where the entry's offset field (flag byte, then the offset) starts
    desc: str


class _Reader:
    """Reads the header and TOC forwards from the start of the file."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.pos = 0
        self.int_size = 4

    def take(self, size: int) -> bytes:
        if self.pos + size > self.size:  # also bounds what a damaged length can read
            raise _Unsure("truncated")
        chunk = self.handle.read(size)
        if len(chunk) != size:
            raise _Unsure("truncated")
        self.pos += size
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def integer(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def short_string(self) -> bytes | None:
        """A string that is short in any archive pg_dump writes (an entry's kind)."""
        size = self.integer()
        if size > 255:
            raise _Unsure("damaged")
        return None if size < 0 else self.take(size)

    def skip_string(self) -> bool:
        """Skip a string without reading it into memory; False if it was NULL."""
        size = self.integer()
        if size < 0:
            return False
        if self.pos + size > self.size:
            raise _Unsure("truncated")
        self.pos = self.handle.seek(self.pos + size)
        return True


class _Scanner:
    """Finds bytes at or after a position, reading the file forwards in chunks, so that
    memory stays bounded and each byte is read about once over successive searches."""

    def __init__(self, handle: BinaryIO, chunk_size: int) -> None:
        self.handle = handle
        self.chunk_size = chunk_size
        self.buffer = b""
        self.start = 0  # the file offset of buffer[0]

    def find(self, needle: bytes, position: int) -> int:
        """The offset of the first ``needle`` at or after ``position``; -1 if none."""
        if not self.start <= position <= self.start + len(self.buffer):
            self.handle.seek(position)
            self.buffer, self.start = b"", position
        while (found := self.buffer.find(needle, max(position - self.start, 0))) < 0:
            chunk = self.handle.read(self.chunk_size)
            if not chunk:
                return -1
            # a match not yet found starts in the last len(needle) - 1 bytes, or later
            keep = max(position, self.start + len(self.buffer) - len(needle) + 1)
            self.buffer = self.buffer[keep - self.start:] + chunk
            self.start = keep
        return self.start + found


def add_data_offsets(path: Path | str, *, chunk_size: int = _CHUNK_SIZE) -> int:
    """Set the data offsets of the archive at ``path`` where pg_dump could not; returns
    how many were set (0: the file was left as it was). ``chunk_size``: bytes read at a
    time while looking for the data blocks."""
    with open(path, "r+b") as handle:
        try:
            return _patch(handle, chunk_size)
        except _Unsure:
            return 0


def _patch(handle: BinaryIO, chunk_size: int) -> int:
    reader = _Reader(handle, handle.seek(0, 2))
    handle.seek(0)
    version, off_size = _header(reader)
    pending = _toc(reader, version, off_size)
    if not pending or any(entry.desc != "TABLE DATA" for entry in pending):
        raise _Unsure("no data, or large objects (binary data)")
    starts = _block_starts(reader, _Scanner(handle, chunk_size), pending)
    for entry, start in zip(pending, starts, strict=True):  # only once all are found
        handle.seek(entry.field)
        handle.write(bytes([_OFFSET_SET]) + start.to_bytes(off_size, "little"))
    return len(pending)


def _header(reader: _Reader) -> tuple[tuple[int, int, int], int]:
    """Read up to the TOC; the archive's version and offset size."""
    if reader.take(5) != _MAGIC:
        raise _Unsure("not a custom-format archive")
    version = (reader.byte(), reader.byte(), reader.byte())
    if not _KNOWN[0] <= version <= _KNOWN[1]:
        raise _Unsure(f"archive version {version}")
    reader.int_size, off_size = reader.byte(), reader.byte()
    if reader.byte() != _CUSTOM_FORMAT:
        raise _Unsure("not the custom format")
    compression = reader.byte() if version >= (1, 15, 0) else reader.integer()
    if compression != 0:
        raise _Unsure("compressed data blocks")
    for _ in range(7):  # the creation time
        reader.integer()
    for _ in range(3):  # the database's name, the server's and pg_dump's versions
        reader.skip_string()
    return version, off_size


def _toc(reader: _Reader, version: tuple[int, int, int], off_size: int) -> list[_Pending]:
    """The entries whose data offset is not set, in TOC order; the reader ends at the
    first data block."""
    pending = []
    for _ in range(reader.integer()):
        dump_id = reader.integer()
        reader.integer()  # had a data dumper
        for _ in range(3):  # table oid, oid, tag
            reader.skip_string()
        desc = (reader.short_string() or b"").decode("utf-8", "replace")
        reader.integer()  # section
        for _ in range(6 if version >= (1, 14, 0) else 5):
            reader.skip_string()  # definition, drop, copy statement, schema, tablespace, table AM
        if version >= (1, 16, 0):
            reader.integer()  # relkind
        reader.skip_string()  # owner
        reader.skip_string()  # with oids
        while reader.skip_string():  # dependencies
            pass
        field = reader.pos
        state = reader.byte()
        reader.take(off_size)
        if state == _OFFSET_NOT_SET:
            pending.append(_Pending(dump_id, field, desc))
        elif state == _OFFSET_SET:
            raise _Unsure("offsets already set")
    return pending


def _block_starts(reader: _Reader, scanner: _Scanner, pending: list[_Pending]) -> list[int]:
    """Where each pending entry's data block starts: the first right after the TOC (where
    the reader is), each next one right after the previous block's end marker (a zero
    length)."""
    end_marker = b"\x00" * (1 + reader.int_size)
    first = reader.pos
    starts: list[int] = []
    for entry in pending:
        header = bytes([_BLOCK_DATA, 0]) + entry.dump_id.to_bytes(reader.int_size, "little")
        if not starts:
            found = first if reader.take(len(header)) == header else -1
        else:
            found = scanner.find(end_marker + header, starts[-1] + len(header))
            found = found + len(end_marker) if found >= 0 else -1
        if found < 0:
            raise _Unsure(f"no data block for entry {entry.dump_id}")
        starts.append(found)
    return starts
