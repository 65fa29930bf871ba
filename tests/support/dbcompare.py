"""Proof that a restore lost nothing: schema text and per-table contents, side by side."""

from __future__ import annotations

import re
import shutil
import subprocess

import psycopg

TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated))
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1
"""


def schema_dump(url: str) -> str:
    """pg_dump --schema-only, minus the lines that differ between any two dumps."""
    out = subprocess.run(
        [shutil.which("pg_dump") or "pg_dump", "--schema-only", "--no-owner", "-d", url],
        check=True, capture_output=True, text=True,
    ).stdout
    # \restrict keys (pg_dump >= 15.14) are random per dump; comments carry no schema.
    return "\n".join(
        line for line in out.splitlines()
        if not re.match(r"^(\\(un)?restrict |-- Dumped)", line)
    )


def table_fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent md5 of every table's rows."""
    result: dict[str, tuple[int, str]] = {}
    with psycopg.connect(url) as conn:
        tables = [row[0] for row in conn.execute(TABLES_SQL)]
        for table in tables:
            count, digest = conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '')"
                f" FROM ONLY {table} AS t"
            ).fetchone()
            result[table] = (count, digest)
    return result
