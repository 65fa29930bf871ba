"""What per-table checksums add to a full backup: ``python -m tools.benchmarks.checksum_cost``.

Fills a database with the project's generator (a private PostgreSQL server is started
when no ``--url`` is given), then takes full backups with checksums off and on,
alternating, and prints the medians side by side. Read the ratios, not the seconds: they
depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from pgbackup import ConnectionInfo, LocalStorage, new_backup_id, run_dump
from pgbackup.tablestats import table_stats
from tools.benchmarks import generate
from tools.localservices import PostgresServer

MODES = (False, True)  # checksums off, on


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _database(args.url) as url:
        if not args.existing:
            generate(url, args.scale, args.seed)
        with tempfile.TemporaryDirectory(prefix="checksum-cost-") as scratch:
            results = _measure(url, Path(scratch), args.repeat)
        print(_report(url, args, results))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks.checksum_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an EMPTY database to fill (default: a private server)")
    parser.add_argument("--existing", action="store_true",
                        help="back up --url as it is instead of filling it")
    parser.add_argument("--scale", type=float, default=10.0,
                        help="generator scale: 1 is ~36,000 rows (default 10)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (default 3)")
    return parser


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    """``url``, or a database on a private server stopped afterwards."""
    if url:
        yield url
        return
    server = PostgresServer().start()
    try:
        yield server.create_database("checksum_cost")
    finally:
        server.stop()


def _measure(url: str, scratch: Path, repeat: int) -> dict[str, dict[bool, list[float]]]:
    """Alternating runs of each mode, after one unmeasured warm-up of each."""
    conn = ConnectionInfo.from_url(url)
    storage = LocalStorage(scratch)
    results: dict[str, dict[bool, list[float]]] = {
        "backup": {mode: [] for mode in MODES},
        "stats": {mode: [] for mode in MODES},
        "size": {mode: [] for mode in MODES},
    }
    for run in range(repeat + 1):
        for checksums in MODES if run % 2 else reversed(MODES):
            seconds, size = _timed_backup(conn, storage, checksums)
            stats_seconds = _timed_stats(url, checksums)
            if run:  # run 0 warms the caches
                results["backup"][checksums].append(seconds)
                results["stats"][checksums].append(stats_seconds)
                results["size"][checksums].append(size)
            print(f"run {run} checksums {'on ' if checksums else 'off'}: backup {seconds:.2f} s,"
                  f" table stats alone {stats_seconds:.2f} s", file=sys.stderr)
    return results


def _timed_backup(conn: ConnectionInfo, storage: LocalStorage, checksums: bool
                  ) -> tuple[float, int]:
    backup_id = new_backup_id()
    started = time.monotonic()
    manifest = run_dump(conn, storage, backup_id, "full", checksums=checksums)
    seconds = time.monotonic() - started
    for name in os.listdir(storage.root):
        storage.delete(name)
    return seconds, manifest.size


def _timed_stats(url: str, checksums: bool) -> float:
    """Seconds for table_stats alone, as a backup runs it."""
    with psycopg.connect(url) as pg:
        pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        started = time.monotonic()
        table_stats(pg, count_rows=True, checksums=checksums)
        return time.monotonic() - started


def _report(url: str, args: argparse.Namespace, results: dict[str, dict[bool, list[float]]]
            ) -> str:
    with psycopg.connect(url) as pg:
        version = pg.execute("SHOW server_version").fetchone()[0].split()[0]
        rows, size = pg.execute(
            "SELECT sum(n_live_tup)::bigint, pg_size_pretty(pg_database_size(current_database()))"
            " FROM pg_stat_user_tables"
        ).fetchone()
    backup, stats, artifact = (
        {mode: statistics.median(values) for mode, values in results[key].items()}
        for key in ("backup", "stats", "size")
    )
    source = "existing database" if args.existing else f"scale {args.scale:g}"
    lines = [
        f"{source}: ~{rows:,} rows, database {size}; PostgreSQL {version}, "
        f"{os.cpu_count()} CPUs; median of {args.repeat} alternating runs per mode",
        "",
        f"{'':<28}{'checksums off':>15}{'checksums on':>15}{'on / off':>10}",
        _row("full backup, seconds", backup, "{:.2f}"),
        _row("table stats alone, seconds", stats, "{:.2f}"),
        _row("artifact, MB", {m: v / 1e6 for m, v in artifact.items()}, "{:.1f}"),
        "",
        f"checksums add {backup[True] / backup[False] - 1:+.0%} to a full backup",
    ]
    return "\n".join(lines)


def _row(label: str, values: dict[bool, float], fmt: str) -> str:
    off, on = (fmt.format(values[mode]) for mode in MODES)
    return f"{label:<28}{off:>15}{on:>15}{values[True] / values[False]:>10.2f}"


if __name__ == "__main__":
    sys.exit(main())
