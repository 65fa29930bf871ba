"""What a restore costs next to the raw tools, serial and parallel:
``python -m tools.benchmarks.restore_cost --scale 10``.

Starts a private PostgreSQL, generates the rental shop at ``--scale``, takes one full
backup with the engine (``run_dump``: a zstd frame around pg_dump's custom archive, which
the raw tools read as well), then restores it into new databases, each way in turn,
alternating the order, one unmeasured warm-up round, medians of ``--repeat``:

- raw serial: ``createdb && zstd -dc artifact | pg_restore -d new``;
- raw parallel: ``createdb && zstd -d -o file artifact && pg_restore -j N -d new file``;
- ours: ``restore_checked`` (what a restore job runs: the artifact's checks, pg_restore,
  then every table compared with the manifest), serial (``RESTORE_JOBS=1``) and parallel
  (``N`` jobs, the temporary file in the system's temporary directory), and parallel for a
  backup whose manifest does not record ``archive_size`` (measured by decompressing, as
  before it was recorded); and ours serial without the manifest comparison
  (``restore_into_new_database``), to show what the comparison costs.

Ratios are to raw serial. Read the ratios, not the seconds: they depend on the machine.
This is the engine's path; ``python -m tools.benchmarks.run`` times the API's.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pgbackup import ConnectionInfo, LocalStorage, Manifest, new_backup_id, run_dump
from pgbackup.recovery import restore_checked
from pgbackup.restore import checked_archive_size, restore_into_new_database
from pgbackup.restore_jobs import Parallelism, cpu_count, human_size
from tools.benchmarks import generate
from tools.localservices import PostgresServer

Way = Callable[[str], None]  # restores into the new database of that name


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit)  # so that a killed run still stops its server
    jobs = args.jobs or cpu_count()
    server = PostgresServer().start()
    try:
        url = server.create_database("restore_cost")
        generate(url, args.scale, args.seed)
        with tempfile.TemporaryDirectory(prefix="restore-cost-") as scratch:
            storage = LocalStorage(Path(scratch) / "backups")
            manifest = run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(),
                                "full")
            ways = _ways(server, storage, manifest, jobs, Path(scratch))
            results = _measure(server, ways, args.repeat)
            size = checked_archive_size(storage, manifest)
        print(_report(args, manifest, size, jobs, results))
    finally:
        server.stop()
    return 0


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks.restore_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=10.0,
                        help="generator scale: 1 is ~36,000 rows (default 10)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs per way (default 3)")
    parser.add_argument("--jobs", type=int, default=0,
                        help="parallel jobs (default: the number of CPUs)")
    return parser


def _ways(server: PostgresServer, storage: LocalStorage, manifest: Manifest, jobs: int,
          scratch: Path) -> dict[str, Way]:
    maintenance = ConnectionInfo.from_url(server.url())
    artifact = shlex.quote(str(storage.path(manifest.artifact)))
    unpacked = shlex.quote(str(scratch / "raw.dump"))

    def raw(name: str, restore: str) -> None:
        target = shlex.quote(server.url(name))
        _shell(f"psql -X -q -d {shlex.quote(server.url())} -c 'CREATE DATABASE {name}' && "
               + restore.format(target=target))

    def ours(parallel: Parallelism, restored: Manifest = manifest) -> Way:
        return lambda name: _require_match(
            restore_checked(maintenance, name, storage, restored, parallel=parallel))

    def unchecked(name: str) -> None:
        restore_into_new_database(maintenance, name, storage, manifest,
                                  parallel=Parallelism(jobs=1))

    return {
        "raw serial: zstd -dc | pg_restore": lambda name: raw(
            name, f"zstd -q -dc {artifact} | pg_restore -d {{target}}"),
        f"raw parallel: zstd -d -o file && pg_restore -j {jobs}": lambda name: raw(
            name, f"zstd -q -f -d {artifact} -o {unpacked} && pg_restore -j {jobs} "
                  f"-d {{target}} {unpacked}; status=$?; rm -f {unpacked}; exit $status"),
        "ours serial (RESTORE_JOBS=1)": ours(Parallelism(jobs=1)),
        f"ours parallel ({jobs} jobs)": ours(Parallelism(jobs=jobs)),
        # a backup taken before manifests recorded archive_size: measured by decompressing
        f"ours parallel ({jobs} jobs), archive size not in the manifest": ours(
            Parallelism(jobs=jobs), manifest.model_copy(update={"archive_size": None})),
        "ours serial, no manifest comparison": unchecked,
    }


def _require_match(report: object) -> None:
    if not getattr(report, "matches", False):
        raise RuntimeError("the restored database does not match its manifest")


def _shell(command: str) -> None:
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True)
    if result.returncode:
        raise RuntimeError(f"{command} failed: {result.stderr.decode(errors='replace')}")


def _measure(server: PostgresServer, ways: dict[str, Way], repeat: int
             ) -> dict[str, list[float]]:
    """Each way once per round, the order reversed every other round; round 0 is a
    warm-up and not kept."""
    results: dict[str, list[float]] = {label: [] for label in ways}
    for run in range(repeat + 1):
        order = list(ways) if run % 2 else list(reversed(ways))
        for number, label in enumerate(order):
            name = f"restore_cost_{run}_{number}"
            started = time.monotonic()
            ways[label](name)
            seconds = time.monotonic() - started
            server.drop_database(name)
            print(f"run {run} {label}: {seconds:.2f} s", file=sys.stderr)
            if run:
                results[label].append(seconds)
    return results


def _report(args: argparse.Namespace, manifest: Manifest, archive_bytes: int, jobs: int,
            results: dict[str, list[float]]) -> str:
    baseline = statistics.median(next(iter(results.values())))
    lines = [
        f"scale {args.scale:g}, artifact {human_size(manifest.size)}, archive "
        f"{human_size(archive_bytes)} uncompressed, {cpu_count()} CPUs, {jobs} jobs, "
        f"medians of {args.repeat}",
        "",
        "| way | seconds (median) | runs | / raw serial |",
        "|---|---:|---|---:|",
    ]
    for label, seconds in results.items():
        median = statistics.median(seconds)
        runs = ", ".join(f"{value:.2f}" for value in seconds)
        shown = label.replace("|", "\\|")
        lines.append(f"| {shown} | {median:.2f} | {runs} | {median / baseline:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
