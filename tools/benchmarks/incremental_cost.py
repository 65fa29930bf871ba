"""What an incremental costs next to a full, and how fast its changes replay:
``python -m tools.benchmarks.incremental_cost --scale 180``.

Fills a database with the project's generator on a private PostgreSQL server
(``wal_level=logical``), takes a full backup that starts a chain, changes ``--changes``
rental rows, and takes an incremental: both timed, both sized. Then replays the
incremental onto restored copies of the full, alternating, against two baselines measured
in the same run: ``psql -f`` of the same script already decompressed (what the replay adds
to psql), and the one set-based UPDATE that made the changes (what replaying row by row
costs). Medians of ``--repeat`` runs. Read the ratios, not the seconds.
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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import psycopg
import zstandard

from pgbackup import ConnectionInfo, LocalStorage, Manifest, new_backup_id, run_dump
from pgbackup.chain_restore import replay_incremental
from pgbackup.incremental import run_incremental_to
from pgbackup.restore import restore_archive
from pgbackup.slots import drop_slot
from pgbackup.targets import Target
from tools.benchmarks import generate
from tools.localservices import PostgresServer

T = TypeVar("T")
CHANGE_SQL = ("UPDATE rental SET return_date = rental_date + interval '3 days', "
              "last_update = now() WHERE rental_id <= {changes}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    server = PostgresServer().start()
    try:
        url = server.create_database("incremental_cost")
        generate(url, args.scale, args.seed)
        with tempfile.TemporaryDirectory(prefix="incremental-cost-") as scratch:
            print(_report(server, url, args, Path(scratch)))
    finally:
        server.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks.incremental_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=180.0,
                        help="generator scale: 1 is ~28,000 rows, 180 ~5 million (default)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--changes", type=int, default=10_000, help="rows changed (10,000)")
    parser.add_argument("--repeat", type=int, default=3, help="replays per way (default 3)")
    return parser


def _report(server: PostgresServer, url: str, args: argparse.Namespace, scratch: Path) -> str:
    conn = ConnectionInfo.from_url(url)
    storage = LocalStorage(scratch / "backups")
    full, full_seconds = _timed(lambda: run_dump(conn, storage, new_backup_id(), "full",
                                                  capture_slot="bench_chain_a"))
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET synchronous_commit = on")
        pg.execute(CHANGE_SQL.format(changes=args.changes))
    incremental, incremental_seconds = _timed(lambda: _incremental(conn, storage, full))
    drop_slot(conn, "bench_chain_a")
    drop_slot(conn, "bench_chain_b")
    replays = _replays(server, storage, full, incremental, args, scratch)
    assert incremental.capture is not None
    changes = incremental.capture.changes
    lines = [
        f"scale {args.scale:g}: {_rows(url):,} rows; PostgreSQL "
        f"{full.server_version}, {os.cpu_count()} CPUs; {changes:,} changed rows",
        "",
        f"{'':<44}{'full':>12}{'incremental':>14}{'inc / full':>12}",
        f"{'backup, seconds':<44}{full_seconds:>12.2f}{incremental_seconds:>14.2f}"
        f"{incremental_seconds / full_seconds:>12.3f}",
        f"{'artifact, MB':<44}{full.size / 1e6:>12.2f}{incremental.size / 1e6:>14.3f}"
        f"{incremental.size / full.size:>12.4f}",
        "",
        f"replaying the {changes:,} changes (median of {args.repeat}):",
        f"{'':<44}{'seconds':>12}{'changes/s':>14}{'vs replay':>12}",
    ]
    replay = replays["replay (zstd, filter, psql)"]
    for label, seconds in replays.items():
        lines.append(f"{label:<44}{seconds:>12.2f}{changes / seconds:>14,.0f}"
                     f"{seconds / replay:>12.2f}")
    return "\n".join(lines)


def _incremental(conn: ConnectionInfo, storage: LocalStorage, full: Manifest) -> Manifest:
    [copy] = run_incremental_to(conn, [Target("local", storage)], new_backup_id(), full,
                                "bench_chain_b")
    assert copy.manifest is not None, copy.error
    return copy.manifest


def _replays(server: PostgresServer, storage: LocalStorage, full: Manifest,
             incremental: Manifest, args: argparse.Namespace, scratch: Path
             ) -> dict[str, float]:
    """Each way onto a fresh restore of the full, alternating; medians."""
    script = scratch / "incremental.sql"
    with storage.open_read(incremental.artifact) as source, script.open("wb") as plain:
        zstandard.ZstdDecompressor().copy_stream(source, plain)
    psql = shutil.which("psql") or "psql"
    ways: dict[str, Callable[[ConnectionInfo], object]] = {
        "replay (zstd, filter, psql)":
            lambda db: replay_incremental(db, storage, incremental, None, None),
        "baseline: psql -f of the decompressed script":
            lambda db: _psql(psql, db, "-f", str(script)),
        "baseline: the one UPDATE that made them":
            lambda db: _psql(psql, db, "-c", CHANGE_SQL.format(changes=args.changes)),
    }
    seconds: dict[str, list[float]] = {label: [] for label in ways}
    for run in range(args.repeat):
        for label in (ways if run % 2 == 0 else reversed(list(ways))):
            name = f"replay_{run}_{len(seconds[label])}_{abs(hash(label)) % 1000}"
            target = ConnectionInfo.from_url(server.create_database(name))
            restore_archive(target, storage, full, no_owner=True, no_acl=True)
            seconds[label].append(_timed(partial(ways[label], target))[1])
            server.drop_database(name)
            print(f"run {run} {label}: {seconds[label][-1]:.2f} s", file=sys.stderr)
    return {label: statistics.median(values) for label, values in seconds.items()}


def _psql(psql: str, db: ConnectionInfo, *args: str) -> None:
    subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.conninfo, *args],
                   check=True, capture_output=True)


def _timed(work: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = work()
    return result, time.monotonic() - started


def _rows(url: str) -> int:
    with psycopg.connect(url) as pg:
        row = pg.execute("SELECT sum(n_live_tup)::bigint FROM pg_stat_user_tables").fetchone()
    return int(row[0]) if row else 0


if __name__ == "__main__":
    sys.exit(main())
