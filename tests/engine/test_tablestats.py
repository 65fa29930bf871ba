"""table_stats: exact counts and content checksums that survive a restore."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from pgbackup import ConnectionInfo, LocalStorage, TableInfo, new_backup_id, run_dump
from pgbackup.tablestats import STATS_SETTINGS, table_stats
from tests.engine.helpers import restore_with_stock_tools, row_counts_of_tables

# Every value below prints differently under these settings than under the defaults.
ODD_SETTINGS = {
    "DateStyle": "SQL, DMY",
    "IntervalStyle": "iso_8601",
    "TimeZone": "Asia/Kathmandu",
    "extra_float_digits": "-3",
    "bytea_output": "escape",
    "search_path": "odd, public",
}
TYPES_TABLE = """
CREATE SCHEMA odd;
CREATE TABLE odd.relation_named_like_this (x int);
CREATE TABLE public.kinds (d date, ts timestamptz, i interval, f float8, b bytea, r regclass);
INSERT INTO public.kinds VALUES (
    '2024-02-29', '2024-02-29 23:59:59.5+00', '1 day 02:03:04', 1.0 / 3, '\\x00ff',
    'odd.relation_named_like_this'
);
"""


def connect(url: str, settings: dict[str, str] | None = None) -> psycopg.Connection:
    """A connection whose session starts with ``settings``."""
    options = [f"-c {name}={value.replace(' ', '')}" for name, value in (settings or {}).items()]
    return psycopg.connect(url, options=" ".join(options))


def stats(url: str, count_rows: bool = True, checksums: bool = True,
          settings: dict[str, str] | None = None) -> list[TableInfo]:
    with connect(url, settings) as pg:
        return table_stats(pg, count_rows, checksums)


def by_name(tables: list[TableInfo]) -> dict[str, TableInfo]:
    return {table.qualified_name: table for table in tables}


def test_server_side_checksums_of_a_restored_copy_are_those_of_the_source(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str]
) -> None:
    """Pagila has timestamptz, bytea, tsvector, arrays, numeric, enums and partitions.
    (A full backup's checksums are now digests of its stream: tests/engine/test_copydigest;
    these server-side ones remain an incremental's, and older backups'.)"""
    manifest = run_dump(ConnectionInfo.from_url(pagila), storage, new_backup_id(), "full")
    source = stats(pagila)
    assert all(table.checksum for table in source)
    assert len({table.checksum for table in source}) == len(source)
    assert {"payment_p2022_01", "film", "staff"} <= {table.name for table in source}

    target = scratch_db()
    restore_with_stock_tools(storage.path(manifest.artifact), target)

    assert stats(target) == source
    assert stats(target, settings=ODD_SETTINGS) == source


def test_checksums_do_not_depend_on_session_settings(scratch_db: Callable[[], str]) -> None:
    url = scratch_db()
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(TYPES_TABLE)
    normal, odd = column_texts(url, STATS_SETTINGS), column_texts(url, ODD_SETTINGS)
    assert all(a != b for a, b in zip(normal, odd, strict=True)), (normal, odd)

    assert stats(url, settings=ODD_SETTINGS) == stats(url)


def column_texts(url: str, settings: dict[str, str]) -> tuple[str, ...]:
    """The text form of each value in public.kinds under ``settings``."""
    with connect(url, settings) as pg:
        row = pg.execute(
            "SELECT d::text, ts::text, i::text, f::text, b::text, r::text FROM public.kinds"
        ).fetchone()
        assert row is not None
        return tuple(row)


@pytest.fixture
def table_pair(scratch_db: Callable[[], str]) -> tuple[str, Callable[[str], None]]:
    """A scratch database with public.a and public.b holding the same rows, inserted in
    opposite orders; and a function running SQL there."""
    url = scratch_db()

    def run(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(statement)

    run("CREATE TABLE a (id int, t text, note text)")
    run("CREATE TABLE b (LIKE a)")
    run("INSERT INTO a SELECT i, 'same', 'row ' || i FROM generate_series(1, 500) AS i")
    run("INSERT INTO b SELECT * FROM a ORDER BY id DESC")
    return url, run


def test_checksum_is_order_independent_and_sees_any_change(
    table_pair: tuple[str, Callable[[str], None]],
) -> None:
    url, run = table_pair
    before = by_name(stats(url))
    assert before["public.a"].rows == before["public.b"].rows == 500
    assert before["public.a"].checksum == before["public.b"].checksum

    run("UPDATE b SET note = 'row 7!' WHERE id = 7")  # a column other than one named "t"
    changed = by_name(stats(url))["public.b"]
    assert changed.rows == 500 and changed.checksum != before["public.b"].checksum

    run("UPDATE b SET note = 'row 7' WHERE id = 7")
    assert by_name(stats(url))["public.b"] == before["public.b"]


def test_duplicate_rows_count(table_pair: tuple[str, Callable[[str], None]]) -> None:
    url, run = table_pair
    run("INSERT INTO b SELECT * FROM a WHERE id = 1")
    run("INSERT INTO a SELECT * FROM a WHERE id = 2")
    tables = by_name(stats(url))
    assert tables["public.a"].rows == tables["public.b"].rows == 501
    assert tables["public.a"].checksum != tables["public.b"].checksum


def test_counting_and_checksums_are_optional(
    table_pair: tuple[str, Callable[[str], None]],
) -> None:
    url, run = table_pair
    run("CREATE TABLE empty (x int)")
    assert stats(url, count_rows=False, checksums=False) == [
        TableInfo("public", "a", None), TableInfo("public", "b", None),
        TableInfo("public", "empty", None),
    ]
    assert [t.rows for t in stats(url, checksums=False)] == [500, 500, 0]
    assert all(t.checksum is None for t in stats(url, checksums=False))
    assert by_name(stats(url))["public.empty"] == TableInfo("public", "empty", 0, "0")


def test_tables_are_those_pg_dump_dumps(pagila: str) -> None:
    assert {t.qualified_name: t.rows for t in stats(pagila)} == row_counts_of_tables(pagila)


def test_tables_without_columns_and_with_odd_names(
    table_pair: tuple[str, Callable[[str], None]],
) -> None:
    url, run = table_pair
    run('CREATE SCHEMA "My Schema"; CREATE TABLE "My Schema"."Odd ""Name""" ()')
    run('INSERT INTO "My Schema"."Odd ""Name""" DEFAULT VALUES')
    odd = stats(url)[0]
    assert (odd.schema, odd.name, odd.rows) == ("My Schema", 'Odd "Name"', 1)
    assert odd.checksum not in (None, "0")
