"""What the tables hold: the list of tables, row counts and server-side checksums.

A full backup lists its tables here and takes their rows and checksums from pg_dump's
stream (pgbackup.copydigest). The server-side checksums below are an incremental's, for
the tables that changed, and those of full backups taken before stream digests; a restored
copy is described the same way to be compared with them table by table.

A table's server-side checksum is the sum of a 64-bit hash of every row's text form
(``hashtextextended``), as a decimal string: independent of row order and physical
layout, so a faithful pg_restore of the table into another database on the same server
gives the same value. The text form of some types depends on session settings; these are
fixed by :func:`stats_session_setup` before anything is computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgbackup.manifest import TableInfo

# Ordinary tables and partitions in user schemas, each partition with the partitioned table
# at the root of its tree; tables owned by an extension are the extension's business
# (pg_dump skips their definitions too). A partitioned table holds no rows itself.
TABLES_SQL = """
SELECT n.nspname, c.relname, rn.nspname || '.' || r.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class r ON c.relispartition AND r.oid = pg_partition_root(c.oid)
LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""

# Every setting that changes the text form of a stored value: dates and times, intervals,
# floats, bytea, money, and reg* types (printed relative to the search path).
STATS_SETTINGS: dict[str, str] = {
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "search_path": "",
}

_COUNT_SQL = "SELECT count(*) FROM ONLY {table}"
# ROW(t.*) rather than t: a column named like the alias would shadow the whole-row value.
# sum(bigint) is numeric, so it cannot overflow; COLLATE "C" hashes the raw bytes.
_COUNT_AND_CHECKSUM_SQL = """
SELECT count(*), coalesce(sum(hashtextextended(ROW(t.*)::text COLLATE "C", 0)), 0)::text
FROM ONLY {table} AS t
"""


def stats_session_setup(pg: psycopg.Connection) -> None:
    """Fix the session settings that the text form of values (hence checksums) depends on.

    Session-level (plain SET): they outlast the current transaction.
    """
    pairs = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, false)").format(sql.Literal(name), sql.Literal(value))
        for name, value in STATS_SETTINGS.items()
    )
    pg.execute(sql.SQL("SELECT {}").format(pairs))


def table_stats(pg: psycopg.Connection, count_rows: bool, checksums: bool,
                only: set[str] | None = None) -> list[TableInfo]:
    """Every user table (or those of ``only``, by ``schema.name``), sorted by schema and
    name, as seen by ``pg``'s current snapshot.

    ``rows`` is the exact count when ``count_rows`` or ``checksums`` is set (one scan gives
    both), else None; ``checksum`` is None unless ``checksums`` is set. Run it in one
    REPEATABLE READ transaction for a consistent picture. Calls stats_session_setup.
    """
    stats_session_setup(pg)
    return [
        _describe(pg, schema, name, count_rows, checksums, root)
        for schema, name, root in pg.execute(TABLES_SQL).fetchall()
        if only is None or f"{schema}.{name}" in only
    ]


@dataclass(frozen=True)
class TableCount:
    """Tables as a person counts them: a partitioned table is one table, its partitions are
    counted apart. ``str()``: '13 tables (25 partitions)', '1 table'."""

    tables: int
    partitions: int

    def __str__(self) -> str:
        text = _plural(self.tables, "table")
        return f"{text} ({_plural(self.partitions, 'partition')})" if self.partitions else text


def count_tables(partition_of: Iterable[str | None]) -> TableCount:
    """The count of listed tables given each one's ``partition_of``: its partitions make
    their root one table (the root itself is not listed)."""
    roots = list(partition_of)
    partitions = [root for root in roots if root is not None]
    return TableCount(len(roots) - len(partitions) + len(set(partitions)), len(partitions))


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _describe(
    pg: psycopg.Connection, schema: str, name: str, count_rows: bool, checksums: bool,
    partition_of: str | None,
) -> TableInfo:
    if checksums:
        rows, checksum = _one_row(pg, _COUNT_AND_CHECKSUM_SQL, schema, name)
        return TableInfo(schema, name, rows, checksum, partition_of)
    if count_rows:
        (rows,) = _one_row(pg, _COUNT_SQL, schema, name)
        return TableInfo(schema, name, rows, partition_of=partition_of)
    return TableInfo(schema, name, None, partition_of=partition_of)


def _one_row(pg: psycopg.Connection, query: str, schema: str, name: str) -> tuple[Any, ...]:
    """The single row of an aggregate over one table."""
    statement = sql.SQL(query).format(table=sql.Identifier(schema, name))
    row = pg.execute(statement).fetchone()
    assert row is not None  # an aggregate always returns one row
    return row
