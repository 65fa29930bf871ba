"""Table checksums computed from pg_dump's stream (pgbackup.copydigest), against real
pg_dump archives: rows, digests that survive a restore and see any change, and a parser
that does not care where the stream is cut."""

from __future__ import annotations

import logging
import random
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator

import psycopg
import pytest
from xxhash import xxh3_64_intdigest

from pgbackup import BackupError, ConnectionInfo, LocalStorage, Manifest, new_backup_id, run_dump
from pgbackup.copydigest import (
    ArchiveFormatError,
    CopyDigester,
    TableDigest,
    dump_digests,
    is_stream_checksum,
    stream_tables,
)
from pgbackup.manifest import TableInfo
from pgbackup.recovery import RecoveryReport, describe_database
from pgbackup.restore import RestoreOutcome
from pgbackup.tablestats import table_stats
from pgbackup.verify import compare_tables
from tests.engine.helpers import require_tool, restore_with_stock_tools, row_counts_of_tables

Digests = dict[tuple[str, str], TableDigest]

# Values whose COPY text holds escapes, and a generated column (left out of COPY).
SPECIAL = r"""
CREATE TABLE special (
    id int PRIMARY KEY, t text, b bytea, ts timestamptz, f float8, i interval,
    doubled int GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO special VALUES
    (1, E'line one\nline two', E'\\x0a0d09005c', '2024-02-29 23:59:59.5+05:45', 0.1, '1 day'),
    (2, E'tab\there, back\\slash, \\.', '\x', '1999-12-31 12:00+00', 1e300, '-3 hours'),
    (3, '\.', NULL, NULL, 'NaN', NULL),
    (4, '', '\x00', 'infinity', -0.0, '1 mon 2 days');
CREATE TABLE empty (x int);
CREATE TABLE nothing ();
INSERT INTO nothing DEFAULT VALUES; INSERT INTO nothing DEFAULT VALUES;
CREATE TABLE measure (at date, v int) PARTITION BY RANGE (at);
CREATE TABLE measure_2024 PARTITION OF measure FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measure_2025 PARTITION OF measure FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO measure SELECT DATE '2024-06-01' + i, i FROM generate_series(1, 400) AS i;
SELECT lo_from_bytea(0, convert_to(repeat(E'large\nobject\\.\n', 5000), 'UTF8'));
"""


def run_sql(url: str, statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(statements)


def archive_of(url: str, *options: str) -> bytes:
    """``pg_dump -Fc -Z0`` of ``url``, whole (the tests' archives are small)."""
    return subprocess.run([require_tool("pg_dump"), "-Fc", "-Z0", *options, "-d", url],
                          capture_output=True, check=True).stdout


def digests_of(archive: bytes, sizes: Iterable[int]) -> Digests:
    """Feed ``archive`` in pieces of the given sizes (cycled until it is all fed)."""
    digester, position = CopyDigester(), 0
    for size in sizes:
        if position >= len(archive):
            break
        digester.feed(archive[position:position + size])
        position += size
    return digester.finish()


def forever(*sizes: int) -> Iterator[int]:
    while True:
        yield from sizes


def copy_digest(url: str, table: str) -> TableDigest:
    """The definition, computed apart from the parser: COPY's lines, as pg_dump's session
    prints them, each hashed with xxh3-64, summed mod 2**64."""
    with psycopg.connect(url) as pg:
        pg.execute("SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = UTC;"
                   " SET extra_float_digits = 3; SET bytea_output = hex")
        with pg.cursor().copy(f"COPY {table} TO STDOUT") as copy:
            text = b"".join(bytes(block) for block in copy)
    rows = text.split(b"\n")[:-1]
    return TableDigest(len(rows), sum(map(xxh3_64_intdigest, rows)) % 2**64)


def backup(url: str, storage: LocalStorage, **options: object) -> Manifest:
    return run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(), "full", **options)


def by_name(tables: list[TableInfo]) -> dict[str, TableInfo]:
    return {table.qualified_name: table for table in tables}


@pytest.fixture
def special(scratch_db: Callable[[], str]) -> str:
    url = scratch_db()
    run_sql(url, SPECIAL)
    return url


def test_pagila_rows_are_counted_and_digests_survive_a_restore(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str]
) -> None:
    manifest = backup(pagila, storage)

    assert {t.qualified_name: t.rows for t in manifest.tables} == row_counts_of_tables(pagila)
    assert all(is_stream_checksum(t.checksum) for t in manifest.tables)
    assert len({t.checksum for t in manifest.tables}) == len(manifest.tables)
    target = scratch_db()
    restore_with_stock_tools(storage.path(manifest.artifact), target)
    assert describe_database(ConnectionInfo.from_url(target), manifest.tables) == manifest.tables
    payments = by_name(manifest.tables)["public.payment_p2022_01"]
    assert payments.partition_of == "public.payment"
    assert copy_digest(target, "public.payment_p2022_01").checksum == payments.checksum


def test_the_parser_does_not_care_where_the_stream_is_cut(pagila: str, special: str) -> None:
    archive = archive_of(pagila)
    whole = digests_of(archive, [len(archive)])
    assert whole == digests_of(archive, forever(7))
    assert whole == digests_of(archive, forever(1 << 20))
    pieces = random.Random(15)
    assert whole == digests_of(archive, iter(lambda: pieces.randint(1, 70_000), None))

    small = archive_of(special)
    assert digests_of(small, forever(1)) == digests_of(small, [len(small)])


class _DataStart(CopyDigester):
    """Notes where the data blocks start (after the header and TOC)."""

    start: int | None = None

    def _read_block(self) -> bool:
        if self.start is None:
            self.start = self._pos
        return super()._read_block()


def rechunked(archive: bytes, pieces: random.Random) -> bytes:
    """``archive`` with every block's content cut into chunks of random sizes (several rows
    in one, rows across two), as a pg_dump that buffered its output would write them."""
    finder = _DataStart()
    finder.feed(archive)
    assert finder.start is not None
    out, pos = [archive[:finder.start]], finder.start

    def int_at(at: int) -> int:
        return int.from_bytes(archive[at + 1:at + 5], "little")

    def chunks() -> None:  # re-cut one run of chunks, up to its length 0
        nonlocal pos
        content = []
        while length := int_at(pos):
            content.append(archive[pos + 5:pos + 5 + length])
            pos += 5 + length
        pos += 5
        data = b"".join(content)
        while data:
            size = pieces.randint(1, 300)
            out.append(bytes([0]) + len(data[:size]).to_bytes(4, "little") + data[:size])
            data = data[size:]
        out.append(bytes(5))

    while pos < len(archive):
        kind = archive[pos]
        out.append(archive[pos:pos + 6])
        pos += 6
        if kind == 1:
            chunks()
            continue
        while int_at(pos):  # large objects: oid, chunks, up to an oid of 0
            out.append(archive[pos:pos + 5])
            pos += 5
            chunks()
        out.append(archive[pos:pos + 5])
        pos += 5
    return b"".join(out)


def test_rows_cut_across_and_within_chunks_give_the_same_digests(
    pagila: str, special: str
) -> None:
    for url in (pagila, special):
        archive = archive_of(url)
        other = rechunked(archive, random.Random(17))
        assert other != archive
        assert digests_of(other, forever(65536)) == digests_of(archive, forever(65536))


def test_odd_values_empty_tables_partitions_and_large_objects(special: str) -> None:
    digests = digests_of(archive_of(special), forever(1 << 20))

    for table in ("special", "measure_2024", "measure_2025", "nothing", "empty"):
        assert digests["public", table] == copy_digest(special, f"public.{table}"), table
    assert digests["public", "special"].rows == 4
    assert digests["public", "nothing"].rows == 2
    assert digests["public", "empty"] == TableDigest(0, 0)
    assert TableDigest(0, 0).checksum == "copy-xxh3:0000000000000000"
    assert ("public", "measure") not in digests  # a partitioned table holds no rows


def test_a_changed_missing_or_duplicated_row_changes_the_digest(special: str) -> None:
    def digest() -> TableDigest:
        return dump_digests(ConnectionInfo.from_url(special))["public", "measure_2024"]

    before = digest()
    run_sql(special, "UPDATE measure SET v = v + 1 WHERE v = 7")
    assert digest() != before and digest().rows == before.rows
    run_sql(special, "UPDATE measure SET v = v - 1 WHERE v = 8 AND at = DATE '2024-06-08'")
    assert digest() == before

    run_sql(special, "CREATE TABLE saved AS SELECT * FROM measure_2024 WHERE v = 9")
    run_sql(special, "DELETE FROM measure WHERE v = 9")
    assert digest().rows == before.rows - 1
    run_sql(special, "INSERT INTO measure SELECT * FROM saved;" * 2)
    assert digest().rows == before.rows + 1 and digest() != before
    run_sql(special, "DELETE FROM measure WHERE v = 9; INSERT INTO measure SELECT * FROM saved")
    assert digest() == before


def test_the_digest_does_not_depend_on_the_physical_order(special: str) -> None:
    def digest() -> TableDigest:
        return dump_digests(ConnectionInfo.from_url(special))["public", "special"]

    before = digest()
    run_sql(special, "UPDATE special SET f = f WHERE id IN (1, 3)")  # rows move to the end
    assert digest() == before
    run_sql(special, "CLUSTER special USING special_pkey")
    assert digest() == before
    run_sql(special, "UPDATE special SET t = t WHERE id = 2")
    run_sql(special, "VACUUM FULL special")
    assert digest() == before


def test_text_depends_on_no_server_database_or_worker_setting(
    special: str, storage: LocalStorage, scratch_db: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The source database prints timestamptz in Kathmandu and bytea as escapes, the worker
    has another PGTZ; the restored copy is read back under yet other defaults."""
    name = ConnectionInfo.from_url(special).dbname
    run_sql(special, f"ALTER DATABASE {name} SET TimeZone = 'Asia/Kathmandu';"
                     f" ALTER DATABASE {name} SET bytea_output = 'escape';"
                     f" ALTER DATABASE {name} SET DateStyle = 'SQL, DMY';"
                     f" ALTER DATABASE {name} SET extra_float_digits = -3")
    monkeypatch.setenv("PGTZ", "Pacific/Chatham")
    manifest = backup(special, storage)
    monkeypatch.setenv("PGTZ", "America/Los_Angeles")
    target = scratch_db()
    run_sql(target, f"ALTER DATABASE {ConnectionInfo.from_url(target).dbname}"
                    " SET TimeZone = 'America/New_York'")
    restore_with_stock_tools(storage.path(manifest.artifact), target)

    assert describe_database(ConnectionInfo.from_url(target), manifest.tables) == manifest.tables


def test_old_and_mixed_checksums_still_verify(
    special: str, storage: LocalStorage, scratch_db: Callable[[], str]
) -> None:
    """A manifest of older backups holds server-side sums (decimal); an incremental's
    changed tables too, beside stream digests carried from its full."""
    manifest = backup(special, storage)
    with psycopg.connect(special) as pg:
        legacy = table_stats(pg, count_rows=True, checksums=True)
    assert not any(is_stream_checksum(table.checksum) for table in legacy)
    mixed = [old if old.name.startswith("measure") else new
             for old, new in zip(legacy, manifest.tables, strict=True)]
    url = scratch_db()
    target = ConnectionInfo.from_url(url)
    restore_with_stock_tools(storage.path(manifest.artifact), url)

    assert describe_database(target, legacy) == legacy
    assert describe_database(target, mixed) == mixed
    run_sql(url, "UPDATE measure SET v = 0 WHERE v = 1")
    assert describe_database(target, mixed) != mixed


def test_checksums_off_still_counts_rows_from_the_stream(special: str, storage: LocalStorage
                                                          ) -> None:
    manifest = backup(special, storage, checksums=False)
    assert {t.qualified_name: t.rows for t in manifest.tables} == row_counts_of_tables(special)
    assert all(t.checksum is None for t in manifest.tables)


def test_a_listed_table_pg_dump_wrote_no_data_for_fails_the_backup(
    special: str, storage: LocalStorage, fake_pg_dump: Callable[[str], str],
) -> None:
    """pg_dump dumps every table's data short of options we do not pass: a table without
    its data would be in the backup unproven, so the backup fails instead."""
    skips_data = fake_pg_dump('exec "$REAL" "$@" --exclude-table-data=public.special')
    with pytest.raises(BackupError, match=r"pg_dump wrote no data for public\.special"):
        backup(special, storage, pg_dump=skips_data)
    listed = [TableInfo("public", "a", None), TableInfo("public", "b", None)]
    with pytest.raises(ArchiveFormatError, match=r"no data for public\.b$"):
        stream_tables(listed, {("public", "a"): TableDigest(1, 2)}, checksums=True)


# Writes the real pg_dump's archive as a newer pg_dump would label it: version 1.17.
NEWER_ARCHIVE = (
    "import shutil, sys; head = bytearray(sys.stdin.buffer.read(8)); "
    "head[5:8] = b'\\x01\\x11\\x00'; sys.stdout.buffer.write(head); "
    "shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)")


@pytest.mark.parametrize("checksums", [True, False], ids=["checksums", "rows only"])
def test_an_archive_version_the_parser_does_not_know_falls_back_to_a_second_read(
    special: str, storage: LocalStorage, fake_pg_dump: Callable[[str], str],
    caplog: pytest.LogCaptureFixture, checksums: bool,
) -> None:
    """A newer pg_dump must not stop backups: the tables are read in the dump's snapshot
    instead, as before the stream digests (decimal checksums, verified server-side)."""
    newer = newer_pg_dump(fake_pg_dump)
    with caplog.at_level(logging.WARNING, logger="pgbackup.dump"):
        manifest = backup(special, storage, pg_dump=newer, checksums=checksums, compress=False)
    with open(storage.path(manifest.artifact), "rb") as artifact:
        assert artifact.read(8)[5:8] == bytes([1, 17, 0])
    with psycopg.connect(special) as pg:
        expected = table_stats(pg, count_rows=True, checksums=checksums)
    assert manifest.tables == expected
    assert not any(is_stream_checksum(table.checksum) for table in manifest.tables)
    assert "pg_dump wrote archive version 1.17, which the stream parser does not read" \
        in caplog.text


def newer_pg_dump(fake_pg_dump: Callable[[str], str]) -> str:
    return fake_pg_dump(f'"$REAL" "$@" | {shlex.quote(sys.executable)} -c '
                        f'{shlex.quote(NEWER_ARCHIVE)}; exit "${{PIPESTATUS[0]}}"')


def test_a_restore_read_back_by_a_newer_pg_dump_compares_rows_only(
    special: str, storage: LocalStorage, scratch_db: Callable[[], str],
    fake_pg_dump: Callable[[str], str],
) -> None:
    """The digests cannot be read back: the rows are still compared, and each table's
    check says its content was not."""
    manifest = backup(special, storage)
    url = scratch_db()
    restore_with_stock_tools(storage.path(manifest.artifact), url)
    newer = newer_pg_dump(fake_pg_dump)
    target = ConnectionInfo.from_url(url)
    checks = compare_tables(manifest.tables, describe_database(target, manifest.tables, newer))
    assert checks and all(check.ok for check in checks)
    assert all("rows; content not compared" in check.detail for check in checks)
    report = RecoveryReport(url, RestoreOutcome(1, 1, []), checks, [])
    assert report.warnings == [
        "rows compared, content not (a pg_dump newer than the stream parser): "
        + ", ".join(check.name.removeprefix("table ") for check in checks)]
    run_sql(url, "DELETE FROM measure WHERE v = 1")
    checks = compare_tables(manifest.tables, describe_database(target, manifest.tables, newer))
    assert [check.name for check in checks if not check.ok] == ["table public.measure_2024"]


def test_other_archives_are_refused(special: str) -> None:
    archive = archive_of(special)
    with pytest.raises(ArchiveFormatError, match="compressed"):
        digests_of(archive_of(special, "-Z1"), [1 << 20])
    with pytest.raises(ArchiveFormatError, match="not a pg_dump custom-format archive"):
        digests_of(b"PGDMX" + archive[5:], [1 << 20])
    with pytest.raises(ArchiveFormatError, match=r"version 1\.17 is not supported"):
        digests_of(archive[:5] + bytes([1, 17, 0]) + archive[8:], [1 << 20])
    with pytest.raises(ArchiveFormatError, match="ends in the middle"):
        digests_of(archive[:-3], [1 << 20])
