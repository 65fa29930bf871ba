"""Deterministic demo data: a film rental shop, from a few thousand rows to gigabytes.

``generate(url)`` creates the schema in an empty database and streams rows into it with
COPY, in constant memory. The same seed and scale always give byte-identical tables.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from tools.datagen import schema
from tools.datagen.rows import TABLES, Plan, Table

__all__ = ["generate"]

Progress = Callable[[str, int], None]
PROGRESS_EVERY = 100_000


def generate(
    url: str, scale: float = 1.0, seed: int = 42, progress: Progress | None = None
) -> dict[str, int]:
    """Create and fill the rental shop in the empty database at ``url``.

    Scale 1.0 is about 35,000 rows. Customers, addresses, inventory, rentals and payments
    grow linearly with it, stores and staff too (from 2 stores up); the film catalogue
    and the places do not.
    ``progress(table, rows)`` is called every 100,000 rows and when a table is done.
    One transaction: on error the database is left empty. Returns rows per table.
    """
    plan = Plan.build(scale, seed)
    with psycopg.connect(url) as conn:
        schema.create(conn)
        counts = {table.name: _copy(conn, table, plan, progress) for table in TABLES}
        schema.finish(conn)
    return counts


def _copy(conn: psycopg.Connection, table: Table, plan: Plan, progress: Progress | None) -> int:
    """Stream one table's rows through COPY; return how many were written."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.columns))
    )
    count = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for count, row in enumerate(table.rows(plan), 1):
            copy.write_row(row)
            if progress and count % PROGRESS_EVERY == 0:
                progress(table.name, count)
    if progress and count % PROGRESS_EVERY:  # not reported in the loop yet
        progress(table.name, count)
    return count
