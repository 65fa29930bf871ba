"""add_data_offsets: a piped custom archive gets the data offsets pg_dump writes into a
file it can seek in, and nothing else changes; what it cannot be sure of is left alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from pgbackup.archive_offsets import _Scanner, add_data_offsets
from tests.engine.helpers import require_tool


def dumps(url: str, tmp_path: Path, *options: str) -> tuple[Path, Path]:
    """The same database dumped by pg_dump into a pipe and into a file."""
    pg_dump = require_tool("pg_dump")
    piped, seekable = tmp_path / "piped.dump", tmp_path / "seekable.dump"
    with piped.open("wb") as out:  # through a pipe, as a backup is taken
        dump = subprocess.Popen([pg_dump, "-Fc", *options, "-d", url], stdout=subprocess.PIPE)
        assert dump.stdout is not None
        shutil.copyfileobj(dump.stdout, out)
        assert dump.wait() == 0
    subprocess.run([pg_dump, "-Fc", *options, "-f", str(seekable), "-d", url], check=True)
    return piped, seekable


def without_timestamp(data: bytes) -> bytes:
    """The archive minus its creation time (7 integers after the fixed header)."""
    header = 5 + 3 + 3 + 5  # magic, version, sizes and format, compression (an integer)
    return data[:header] + data[header + 7 * 5:]


def test_offsets_are_those_pg_dump_writes_into_a_file(pagila: str, tmp_path: Path) -> None:
    with psycopg.connect(pagila, autocommit=True) as conn:  # an empty table too
        conn.execute("CREATE TABLE nothing_here (id int)")
    piped, seekable = dumps(pagila, tmp_path, "-Z0")
    assert piped.read_bytes() != seekable.read_bytes()

    set_now = add_data_offsets(piped)

    assert set_now > 20  # Pagila's tables (partitions included)
    assert without_timestamp(piped.read_bytes()) == without_timestamp(seekable.read_bytes())
    assert add_data_offsets(piped) == 0  # already set: left alone


def test_same_offsets_whatever_the_chunk_size(pagila: str, tmp_path: Path) -> None:
    """Chunks smaller than what is looked for: matches straddle chunk boundaries."""
    piped, seekable = dumps(pagila, tmp_path, "-Z0")
    for chunk_size in (7, 4096):  # smaller, larger than what is looked for
        copy = tmp_path / f"chunks-{chunk_size}.dump"
        shutil.copyfile(piped, copy)
        assert add_data_offsets(copy, chunk_size=chunk_size) > 20
        assert without_timestamp(copy.read_bytes()) == without_timestamp(seekable.read_bytes())


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 6, 100])
def test_scanner_finds_a_match_across_chunk_boundaries(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "bytes"
    path.write_bytes(b"xxABCxABCDxxABCDxx")
    with path.open("rb") as handle:
        scanner = _Scanner(handle, chunk_size)
        assert scanner.find(b"ABCD", 0) == 6
        assert scanner.find(b"ABCD", 7) == 12
        assert scanner.find(b"ABCD", 13) == -1
        assert scanner.find(b"xx", 1) == 10  # searching again further back


def test_a_large_archive_is_patched_in_bounded_memory(pagila: str, tmp_path: Path) -> None:
    """In a child process whose address space cannot take the archive (it could not be
    mapped), the offsets are still set, as pg_dump sets them."""
    with psycopg.connect(pagila, autocommit=True) as conn:  # about 40 MB
        conn.execute("CREATE TABLE big AS SELECT i, repeat('x', 1000) AS filler"
                     " FROM generate_series(1, 40000) AS i")
    piped, seekable = dumps(pagila, tmp_path, "-Z0", "-t", "big", "-t", "actor")
    assert piped.stat().st_size > 40_000_000
    child = textwrap.dedent("""
        import mmap, resource, sys
        from pgbackup.archive_offsets import add_data_offsets
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) for line in status if line.startswith("VmSize"))
        limit = size * 1024 + 16 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(add_data_offsets(sys.argv[1]))
        try:
            with open(sys.argv[1], "rb") as handle, mmap.mmap(
                    handle.fileno(), 0, access=mmap.ACCESS_READ):
                print("mapped")
        except OSError:
            print("cannot map")
    """)
    result = subprocess.run([sys.executable, "-c", child, str(piped)], capture_output=True,
                            text=True, check=True, cwd=Path(__file__).parents[2])
    assert result.stdout.split() == ["2", "cannot", "map"]  # "cannot map": the limit bites
    assert without_timestamp(piped.read_bytes()) == without_timestamp(seekable.read_bytes())


def test_what_it_cannot_be_sure_of_is_left_alone(pagila: str, tmp_path: Path) -> None:
    compressed, _ = dumps(pagila, tmp_path, "-Z6")
    before = compressed.read_bytes()
    assert add_data_offsets(compressed) == 0
    assert compressed.read_bytes() == before

    for name, data in (("empty", b""), ("garbage", b"not an archive at all"),
                       ("cut", before[:200])):
        path = tmp_path / name
        path.write_bytes(data)
        assert add_data_offsets(path) == 0
        assert path.read_bytes() == data
