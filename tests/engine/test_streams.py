import hashlib
import io
import os

import zstandard

from pgbackup import CHUNK_SIZE, HashingReader, HashingWriter, copy_stream, zstd_writer


def test_hashing_writer_counts_and_hashes() -> None:
    raw = io.BytesIO()
    writer = HashingWriter(raw)
    writer.write(b"abc")
    writer.write(b"def")
    assert raw.getvalue() == b"abcdef"
    assert writer.bytes_written == 6
    assert writer.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_copy_stream_goes_in_chunks() -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 10)
    chunks: list[int] = []
    out = io.BytesIO()
    assert copy_stream(io.BytesIO(data), out, on_chunk=chunks.append) == len(data)
    assert out.getvalue() == data
    assert chunks == [CHUNK_SIZE, CHUNK_SIZE, 10]


def test_zstd_pipeline_round_trips_and_hashes_stored_bytes() -> None:
    data = b"pagila " * 500_000
    raw = io.BytesIO()
    stored = HashingWriter(raw)
    with zstd_writer(stored) as sink:
        copy_stream(io.BytesIO(data), sink)
    assert not raw.closed
    compressed = raw.getvalue()
    assert len(compressed) < len(data) // 10
    assert stored.hexdigest() == hashlib.sha256(compressed).hexdigest()
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(compressed))
    assert reader.read() == data


def test_hashing_reader_counts_and_hashes() -> None:
    reader = HashingReader(io.BytesIO(b"abcdef"))
    assert reader.read(4) == b"abcd"
    assert reader.read() == b"ef"
    assert reader.read(4) == b""
    assert reader.bytes_read == 6
    assert reader.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
