"""Does ``pg_dump -Fd -j N`` pay here? ``python -m tools.benchmarks.dump_format_cost``.

Fills a database with the project's generator on a private PostgreSQL server, then times,
side by side in one run, the raw pipeline our artifact matches (``pg_dump -Fc -Z0 | zstd
-T0 -3``, one stream) against the directory format dumped by ``--jobs`` workers: with
``-Z0`` then made one stream with ``tar | zstd -T0 -3`` (the same kind of artifact as
ours), with ``-Z0`` alone (the parallel dump's own time, nothing compressed), and with
pg_dump's own per-file compression (gzip: PostgreSQL 15's pg_dump has no zstd). Each row
also says how much local disk the dump directory took: a directory dump is written whole to
local disk before anything can be streamed off site, where the one stream needs none.
Alternating order, one unmeasured warm-up round, medians of ``--repeat`` runs; read the
ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pgbackup import ConnectionInfo
from tools.benchmarks import generate
from tools.localservices import PostgresServer

RAW = "pg_dump -Fc -Z0 | zstd -T0 -3"


@dataclass(frozen=True)
class Way:
    """One way to take the dump: a label and the shell commands (bash, pipefail) that
    write ``$OUT`` (the artifact) from ``$DSN``, using ``$DIR`` as the scratch directory."""

    label: str
    command: str


@dataclass(frozen=True)
class Result:
    seconds: float
    stored: int  # bytes of the artifact
    scratch: int  # bytes of the dump directory: local disk needed before anything can go off site


def ways(jobs: int) -> list[Way]:
    directory = f"pg_dump -Fd -j {jobs} -f \"$DIR\" -d \"$DSN\""
    return [
        Way(RAW, 'pg_dump -Fc -Z0 -d "$DSN" | zstd -q -T0 -3 > "$OUT"'),
        Way("pg_dump -Fc -Z0 (nothing compressed)", 'pg_dump -Fc -Z0 -d "$DSN" > "$OUT"'),
        Way(f"pg_dump -Fd -j {jobs} -Z0, then tar | zstd -T0 -3",
            f'{directory} -Z0 && tar -C "$DIR" -cf - . | zstd -q -T0 -3 > "$OUT"'),
        Way(f"pg_dump -Fd -j {jobs} -Z0 (nothing compressed)", f"{directory} -Z0"),
        Way(f"pg_dump -Fd -j {jobs} (its own gzip per file)", directory),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    server = PostgresServer().start()
    try:
        url = server.create_database("dump_format_cost")
        generate(url, args.scale, args.seed)
        with tempfile.TemporaryDirectory(prefix="dump-format-cost-") as scratch, \
                ConnectionInfo.from_url(url).subprocess_env() as (env, dsn):
            results = _measure(ways(args.jobs), args.repeat, {**env, "DSN": dsn},
                               Path(scratch))
        print(_report(url, args, results))
    finally:
        server.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks.dump_format_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=10.0,
                        help="generator scale: 1 is ~36,000 rows (default 10)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs per way (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="pg_dump -j (default 2)")
    return parser


def _run(way: Way, env: dict[str, str], scratch: Path) -> Result:
    directory, out = scratch / "dir", scratch / "out"
    started = time.monotonic()
    subprocess.run(["bash", "-o", "pipefail", "-c", way.command], check=True,
                   env={**env, "DIR": str(directory), "OUT": str(out)})
    seconds = time.monotonic() - started
    used = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) \
        if directory.exists() else 0
    stored = out.stat().st_size if out.exists() else used
    shutil.rmtree(directory, ignore_errors=True)
    out.unlink(missing_ok=True)
    return Result(seconds, stored, used)


def _measure(all_ways: list[Way], repeat: int, env: dict[str, str], scratch: Path
             ) -> dict[str, Result]:
    """Median seconds of each way, alternating order, after a warm-up round."""
    seconds: dict[str, list[float]] = {way.label: [] for way in all_ways}
    last: dict[str, Result] = {}
    for run in range(repeat + 1):
        for way in all_ways if run % 2 else reversed(all_ways):
            result = _run(way, env, scratch)
            print(f"run {run} {way.label}: {result.seconds:.2f} s", file=sys.stderr)
            if run:  # run 0 warms the caches
                seconds[way.label].append(result.seconds)
                last[way.label] = result
    return {label: Result(statistics.median(seconds[label]), last[label].stored,
                          last[label].scratch) for label in seconds}


def _report(url: str, args: argparse.Namespace, results: dict[str, Result]) -> str:
    with psycopg.connect(url) as pg:
        version, rows, size = pg.execute(
            "SELECT current_setting('server_version'), sum(n_live_tup)::bigint,"
            " pg_size_pretty(pg_database_size(current_database())) FROM pg_stat_user_tables"
        ).fetchone() or ("?", 0, "?")
    raw = results[RAW].seconds
    lines = [
        f"scale {args.scale:g}: ~{rows:,} rows, database {size}; PostgreSQL "
        f"{version.split()[0]}, {os.cpu_count()} CPUs; median of {args.repeat} alternating "
        "runs per way",
        "",
        "| way | seconds | time / raw | artifact MB | local disk MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, result in results.items():
        cell = label.replace("|", "\\|")  # a pipe inside a Markdown table's cell
        lines.append(f"| {cell} | {result.seconds:.2f} | {result.seconds / raw:.2f} "
                     f"| {result.stored / 1e6:.1f} | {result.scratch / 1e6:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
