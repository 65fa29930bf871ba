"""The benchmark's table: what | ours | baseline | ratio, and the machine it ran on."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Row:
    """One measured line; ``baseline`` is None where no raw tool does the same work."""

    what: str
    ours: float
    baseline: float | None


def table(rows: list[Row]) -> str:
    width = max(len(row.what) for row in rows)
    lines = [f"| {'what':<{width}} | {'ours':>10} | {'baseline':>10} | {'ratio':>7} |",
             f"|{'-' * (width + 2)}|{'-' * 12}|{'-' * 12}|{'-' * 9}|"]
    for row in rows:
        baseline = "—" if row.baseline is None else f"{row.baseline:.2f}"
        ratio = f"{row.ours / row.baseline:.2f}x" if row.baseline else "—"
        lines.append(f"| {row.what:<{width}} | {row.ours:>10.2f} | {baseline:>10} "
                     f"| {ratio:>7} |")
    return "\n".join(lines)


def machine_line(url: str, args: argparse.Namespace) -> str:
    with psycopg.connect(url) as pg:
        version = pg.execute("SHOW server_version").fetchone()[0].split()[0]
        rows, size = pg.execute(
            "SELECT sum(n_live_tup)::bigint,"
            " pg_size_pretty(pg_database_size(current_database())) FROM pg_stat_user_tables"
        ).fetchone()
    return (f"scale {args.scale:g}: ~{rows:,} rows, database {size}; PostgreSQL {version}; "
            f"{os.cpu_count()} CPUs; medians of {args.repeat} alternating runs; "
            f"{args.clients} clients x {args.requests} requests over "
            f"{args.catalog_rows:,} seeded catalog rows")
