"""Composable, chunked stream stages: nothing is ever held whole in memory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

import zstandard

CHUNK_SIZE = 1024 * 1024
DEFAULT_ZSTD_LEVEL = 3  # chosen by measurement: docs/performance.md
ZSTD_LEVELS = range(1, 20)  # 20-22 ("ultra") need far more memory to compress and restore
ZSTD_ALL_CPUS = -1
# One compression thread by default, beside the worker's own: the worker's thread also
# reads pg_dump's pipe and digests every row (pgbackup.copydigest), and compressing in it
# made a backup 1.55x the raw pipeline at scale 100 on 2 CPUs, against 1.26x with one zstd
# thread (docs/performance.md). A threaded compressor writes in steps of a job (a few MB).
DEFAULT_ZSTD_THREADS = 1


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class HashingWriter:
    """Pass-through writer that counts bytes and computes the sha256 of what it forwards."""

    def __init__(self, raw: Writable) -> None:
        self._raw = raw
        self._sha256 = hashlib.sha256()
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self._sha256.update(data)
        self.bytes_written += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


class HashingReader:
    """Pass-through reader that counts bytes and computes the sha256 of what it yields."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._sha256 = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._sha256.update(data)
        self.bytes_read += len(data)
        return data

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


@dataclass(frozen=True)
class Zstd:
    """How an artifact is compressed: the zstd level and the compression threads (-1: one
    per CPU, 0: compress in the calling thread)."""

    level: int = DEFAULT_ZSTD_LEVEL
    threads: int = DEFAULT_ZSTD_THREADS

    def __post_init__(self) -> None:
        if self.level not in ZSTD_LEVELS:
            raise ValueError(f"zstd level must be 1 to 19, not {self.level}")
        if self.threads < ZSTD_ALL_CPUS:
            raise ValueError(f"zstd threads must be -1 (all CPUs) or more, not {self.threads}")


DEFAULT_ZSTD = Zstd()


@contextmanager
def zstd_writer(raw: Writable, zstd: Zstd = DEFAULT_ZSTD) -> Iterator[BinaryIO]:
    """Yield a writer compressing into ``raw``; the zstd frame is finished on exit.

    With threads, zstd compresses jobs of a few window sizes in parallel: memory stays
    bounded, and the output is still one standard frame that stock ``zstd -dc`` reads. The
    frame has a checksum so ``zstd -t`` can verify the file; the content size is unknown up
    front and therefore not recorded. ``raw`` is left open.
    """
    compressor = zstandard.ZstdCompressor(level=zstd.level, write_checksum=True,
                                          threads=zstd.threads)
    # zstandard's stub types ``writer`` as IO[bytes], but the library documents (and only
    # calls) an object with ``write()``, plus ``flush()`` when it has one.
    with compressor.stream_writer(raw, closefd=False) as writer:  # type: ignore[arg-type]
        yield writer


def copy_stream(
    src: Readable, dst: Writable, on_chunk: Callable[[int], None] | None = None
) -> int:
    """Copy ``src`` to ``dst`` in pieces of up to CHUNK_SIZE; ``on_chunk(len)`` after each.

    Uses ``read1`` where the source has it, so a slow pipe delivers what it has instead of
    blocking until a whole chunk has arrived (progress stays live). Returns the total.
    """
    read = getattr(src, "read1", src.read)
    total = 0
    while chunk := read(CHUNK_SIZE):
        dst.write(chunk)
        total += len(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return total


def sha256_of(src: Readable) -> str:
    """The sha256 of everything ``src`` yields, read in pieces of CHUNK_SIZE."""
    digest = hashlib.sha256()
    while chunk := src.read(CHUNK_SIZE):
        digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def archive_reader(raw: Readable, compression: str) -> Iterator[Readable]:
    """The custom-format archive inside an artifact, decompressed on the fly when zstd."""
    if compression == "none":
        yield raw
        return
    decompressor = zstandard.ZstdDecompressor()
    # zstandard's stub wants IO[bytes]; the library only calls read() (documented).
    source = cast(BinaryIO, raw)
    with decompressor.stream_reader(source, read_across_frames=True, closefd=False) as reader:
        yield reader
