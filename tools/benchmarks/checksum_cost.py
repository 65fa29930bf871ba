"""What per-table checksums add to a full backup: ``python -m tools.benchmarks.checksum_cost``.

Fills a database with the project's generator (a private PostgreSQL server is started
when no ``--url`` is given), then takes full backups with checksums on (digests of the
dump stream, pgbackup.copydigest) and off, side by side with the raw pipeline
``pg_dump -Fc -Z0 | zstd -T0 -3``, alternating the order, and prints the medians. It also
times the two ways of computing the checksums on their own: digesting an uncompressed
archive in Python (what a backup now does as the stream passes) and the older server-side
scan (``hashtextextended`` of every row, a second read of the data). Read the ratios, not
the seconds: they depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from pgbackup import ConnectionInfo, LocalStorage, new_backup_id, run_dump
from pgbackup.copydigest import CopyDigester
from pgbackup.streams import CHUNK_SIZE
from pgbackup.tablestats import table_stats
from tools.benchmarks import generate, raw_tools
from tools.localservices import PostgresServer

BACKUPS = ("raw pipeline", "checksums off", "checksums on")
ALONE = ("digest of the stream", "server-side scan")
Timed = tuple[float, int, float]  # wall seconds, artifact bytes, our process's CPU seconds


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


def _measure(url: str, scratch: Path, repeat: int) -> dict[str, list[float]]:
    """Seconds of each way, alternating (the order rotates every round), after one
    unmeasured warm-up round; artifact sizes under ``<way> MB``."""
    ways: dict[str, Callable[[], Timed]] = {
        "raw pipeline": lambda: _timed_raw(url, scratch / "raw.zst"),
        "checksums off": lambda: _timed_backup(url, scratch / "ours", checksums=False),
        "checksums on": lambda: _timed_backup(url, scratch / "ours", checksums=True),
        "digest of the stream": lambda: _timed_digest(url, scratch / "plain.dump"),
        "server-side scan": lambda: _timed_scan(url),
    }
    results: dict[str, list[float]] = {name: [] for name in [*ways, *BACKUPS]}
    results |= {f"{name} {unit}": [] for name in BACKUPS for unit in ("MB", "CPU")}
    names = list(ways)
    for run in range(repeat + 1):
        for name in names[run % len(names):] + names[:run % len(names)]:
            seconds, size, cpu = ways[name]()
            print(f"run {run} {name}: {seconds:.2f} s (our CPU {cpu:.2f} s)", file=sys.stderr)
            if run:  # run 0 warms the caches
                results[name].append(seconds)
                if name in BACKUPS:
                    results[f"{name} MB"].append(size / 1e6)
                    results[f"{name} CPU"].append(cpu)
    return results


def _timed_raw(url: str, artifact: Path) -> Timed:
    seconds, _peak = raw_tools.backup(url, artifact)
    size = artifact.stat().st_size
    artifact.unlink()
    return seconds, size, 0.0


def _timed_backup(url: str, root: Path, checksums: bool) -> Timed:
    """The CPU seconds are the worker's own (run_dump's, in this process): less sensitive
    than wall time to other work on a shared machine."""
    storage = LocalStorage(root)
    started, cpu = time.monotonic(), time.process_time()
    manifest = run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(), "full",
                        checksums=checksums)
    seconds = time.monotonic() - started
    cpu = time.process_time() - cpu
    for name in os.listdir(storage.root):
        storage.delete(name)
    return seconds, manifest.size, cpu


def _timed_digest(url: str, archive: Path) -> Timed:
    """CPU seconds of CopyDigester over an uncompressed archive, fed as a backup feeds it
    (the archive is written first, so pg_dump's own time is not counted)."""
    if not archive.exists():
        subprocess.run(["pg_dump", "-Fc", "-Z0", "-f", str(archive), "-d", url], check=True)
    digester = CopyDigester()
    with archive.open("rb") as source:
        started = time.process_time()
        while chunk := source.read(CHUNK_SIZE):
            digester.feed(chunk)
        digester.finish()
        cpu = time.process_time() - started
        return cpu, 0, cpu


def _timed_scan(url: str) -> Timed:
    """Seconds of the older server-side checksums (table_stats), as a backup ran them."""
    with psycopg.connect(url) as pg:
        pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        started = time.monotonic()
        table_stats(pg, count_rows=True, checksums=True)
        return time.monotonic() - started, 0, 0.0


def _report(url: str, args: argparse.Namespace, results: dict[str, list[float]]) -> str:
    with psycopg.connect(url) as pg:
        described = pg.execute(
            "SELECT split_part(current_setting('server_version'), ' ', 1), sum(n_live_tup)::bigint,"
            " pg_size_pretty(pg_database_size(current_database())) FROM pg_stat_user_tables"
        ).fetchone()
    assert described is not None
    version, rows, size = described
    median = {name: statistics.median(values) for name, values in results.items()}
    raw = median["raw pipeline"]
    source = "existing database" if args.existing else f"scale {args.scale:g}"
    lines = [
        f"{source}: ~{rows:,} rows, database {size}; PostgreSQL {version}, "
        f"{os.cpu_count()} CPUs; median of {args.repeat} alternating runs per way",
        "",
        f"{'full backup':<28}{'seconds':>9}{'/ raw':>8}{'MB':>9}{'worker CPU s':>14}",
        *(f"{name:<28}{median[name]:>9.2f}{median[name] / raw:>8.2f}"
          f"{median[f'{name} MB']:>9.1f}{median[f'{name} CPU']:>14.2f}" for name in BACKUPS),
        "",
        f"{'checksums alone':<28}{'seconds':>9}",
        *(f"{name:<28}{median[name]:>9.2f}" for name in ALONE),
        "",
        f"checksums add {median['checksums on'] / median['checksums off'] - 1:+.0%} to a full "
        f"backup; with them on, a backup takes {median['checksums on'] / raw:.2f}x the raw "
        "pipeline's time",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
