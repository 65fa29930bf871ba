"""What each zstd level costs and saves: ``python -m tools.benchmarks.compression_cost``.

Fills a database with the project's generator on a private PostgreSQL server, then takes
full backups (``run_dump``, checksums off, so only the compression differs) at each
``--levels`` with every CPU compressing, and at the default level in one thread, side by
side with two baselines measured in the same run: the raw pipeline
``pg_dump -Fc -Z0 | zstd -T0 -3`` and plain ``pg_dump -Fc`` (its default gzip level).
Alternating order, one unmeasured warm-up round, medians of ``--repeat`` runs. Read the
ratios (time against the raw pipeline, size against ``pg_dump -Fc``), not the seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg

from pgbackup import DEFAULT_ZSTD_LEVEL, ConnectionInfo, LocalStorage, Zstd, new_backup_id, run_dump
from tools.benchmarks import generate
from tools.localservices import PostgresServer

RAW = "pg_dump -Fc -Z0 | zstd -T0 -3"
PG_DUMP = "pg_dump -Fc (gzip)"


@dataclass(frozen=True)
class Way:
    """One way to take the backup: a label and a run returning (seconds, bytes stored)."""

    label: str
    run: Callable[[], tuple[float, int]]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    server = PostgresServer().start()
    try:
        url = server.create_database("compression_cost")
        generate(url, args.scale, args.seed)
        with tempfile.TemporaryDirectory(prefix="compression-cost-") as scratch:
            ways = _ways(ConnectionInfo.from_url(url), Path(scratch), args.levels)
            results = _measure(ways, args.repeat)
        print(_report(url, args, results))
    finally:
        server.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks.compression_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=10.0,
                        help="generator scale: 1 is ~36,000 rows (default 10)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs per way (default 3)")
    parser.add_argument("--levels", type=lambda text: [int(v) for v in text.split(",")],
                        default=[1, 3, 6, 9], help="zstd levels, comma-separated (1,3,6,9)")
    return parser


def _ways(conn: ConnectionInfo, scratch: Path, levels: list[int]) -> list[Way]:
    ours = [Way(f"ours, level {level}, all CPUs", partial(_ours, conn, scratch, Zstd(level)))
            for level in levels]
    one_thread = Way(f"ours, level {DEFAULT_ZSTD_LEVEL}, 1 thread",
                     partial(_ours, conn, scratch, Zstd(DEFAULT_ZSTD_LEVEL, threads=0)))
    return [Way(RAW, partial(_raw, conn, scratch)), Way(PG_DUMP, partial(_pg_dump, conn, scratch)),
            *ours, one_thread]


def _ours(conn: ConnectionInfo, scratch: Path, zstd: Zstd) -> tuple[float, int]:
    storage = LocalStorage(scratch / "ours")
    started = time.monotonic()
    manifest = run_dump(conn, storage, new_backup_id(), "full", checksums=False, zstd=zstd)
    seconds = time.monotonic() - started
    for name in os.listdir(storage.root):
        storage.delete(name)
    return seconds, manifest.size


def _raw(conn: ConnectionInfo, scratch: Path) -> tuple[float, int]:
    """The pipeline a shop would run by hand."""
    target = scratch / "raw.dump.zst"
    with conn.subprocess_env() as (env, dsn), target.open("wb") as out:
        started = time.monotonic()
        dump = subprocess.Popen(["pg_dump", "-Fc", "-Z0", f"--dbname={dsn}"], env=env,
                                stdout=subprocess.PIPE)
        assert dump.stdout is not None
        zstd = subprocess.run(["zstd", "-T0", "-3", "-q", "-c"], stdin=dump.stdout, stdout=out,
                              check=True)
        dump.stdout.close()
        _check(dump.wait(), "pg_dump")
        _check(zstd.returncode, "zstd")
        seconds = time.monotonic() - started
    return seconds, _size_then_delete(target)


def _pg_dump(conn: ConnectionInfo, scratch: Path) -> tuple[float, int]:
    target = scratch / "plain.dump"
    with conn.subprocess_env() as (env, dsn):
        started = time.monotonic()
        subprocess.run(["pg_dump", "-Fc", f"--file={target}", f"--dbname={dsn}"], env=env,
                       check=True)
        seconds = time.monotonic() - started
    return seconds, _size_then_delete(target)


def _check(returncode: int, tool: str) -> None:
    if returncode != 0:
        raise RuntimeError(f"{tool} failed with exit status {returncode}")


def _size_then_delete(path: Path) -> int:
    size = path.stat().st_size
    path.unlink()
    return size


def _measure(ways: list[Way], repeat: int) -> dict[str, tuple[float, int]]:
    """Median seconds and bytes of each way: alternating order, after a warm-up round."""
    seconds: dict[str, list[float]] = {way.label: [] for way in ways}
    sizes: dict[str, int] = {}
    for run in range(repeat + 1):
        for way in ways if run % 2 else reversed(ways):
            took, size = way.run()
            print(f"run {run} {way.label}: {took:.2f} s, {size / 1e6:.2f} MB", file=sys.stderr)
            if run:  # run 0 warms the caches
                seconds[way.label].append(took)
                sizes[way.label] = size
    return {label: (statistics.median(seconds[label]), sizes[label]) for label in seconds}


def _report(url: str, args: argparse.Namespace, results: dict[str, tuple[float, int]]) -> str:
    with psycopg.connect(url) as pg:
        version, rows, size = pg.execute(
            "SELECT current_setting('server_version'), sum(n_live_tup)::bigint,"
            " pg_size_pretty(pg_database_size(current_database())) FROM pg_stat_user_tables"
        ).fetchone() or ("?", 0, "?")
    raw_seconds, pg_dump_size = results[RAW][0], results[PG_DUMP][1]
    lines = [
        f"scale {args.scale:g}: ~{rows:,} rows, database {size}; PostgreSQL "
        f"{version.split()[0]}, {os.cpu_count()} CPUs; median of {args.repeat} alternating "
        "runs per way",
        "",
        f"{'':<32}{'seconds':>9}{'MB':>9}{'time / raw':>12}{'size / pg_dump':>16}",
    ]
    for label, (seconds, stored) in results.items():
        lines.append(f"{label:<32}{seconds:>9.2f}{stored / 1e6:>9.2f}"
                     f"{seconds / raw_seconds:>12.2f}{stored / pg_dump_size:>16.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
