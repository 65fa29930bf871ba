"""Every row of issue #15's table in one run: ``python -m tools.benchmarks.run --scale 10``.

Starts a private PostgreSQL and Redis, generates the rental shop at ``--scale``, and runs
the app as the Procfile does (gunicorn, one ``rq worker``) with a temporary BACKUP_DIR and
SQLite catalog. Then it times our path through the API against the raw tools, alternating,
medians of ``--repeat`` runs: full backups (checksums on, then off in a second worker
phase), artifact size, restore into a new database, the worker tree's peak RSS; then
``--clients`` concurrent clients on the backup list (API and dashboard fragment) over
``--catalog-rows`` catalog rows, and the dashboard index. Prints one table with ratios.
Read the ratios, not the seconds: they depend on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tools.benchmarks import generate, raw_tools
from tools.benchmarks.appstack import ADMIN_PASSWORD, AppStack
from tools.benchmarks.catalog_seed import seed_backups
from tools.benchmarks.http_load import Load, UnexpectedAnswer, run_load
from tools.benchmarks.report import Row, machine_line, table
from tools.benchmarks.rss import Peak, PeakRss
from tools.benchmarks.web_client import WebClient

WAIT = {"Prefer": "wait=60"}
ENDED = ("completed", "failed", "cancelled")
MB = 1e6


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit)  # so that a killed run still stops its processes
    scratch = Path(tempfile.mkdtemp(prefix="bench-run-"))
    stack = AppStack(scratch, "shop")
    try:
        url = stack.start_servers()
        generate(url, args.scale, args.seed)
        stack.make_accounts()
        seed_backups(stack.catalog, scratch / "backups", "shop", args.catalog_rows)
        stack.start_web()
        client = WebClient(stack.port, stack.token)
        client.login("admin", ADMIN_PASSWORD)
        rows = _measure(stack, client, url, args, scratch)
        print(machine_line(url, args))
        print(table(rows))
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks.run",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=10.0,
                        help="generator scale: 1 is ~36,000 rows (default 10)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per row (3)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent HTTP clients (50)")
    parser.add_argument("--requests", type=int, default=20,
                        help="requests per client in each load (20)")
    parser.add_argument("--catalog-rows", type=int, default=10_000,
                        help="backups seeded into the catalog before the web starts (10,000)")
    return parser


def _measure(stack: AppStack, client: WebClient, url: str, args: argparse.Namespace,
             scratch: Path) -> list[Row]:
    """Checksums on (the default) and serial restores first, then checksums off and
    restores as RESTORE_JOBS=auto chooses, in a second worker phase."""
    stack.start_worker(TABLE_CHECKSUMS="true", RESTORE_JOBS="1")
    ours, raw, backup_id = _backups(stack, client, url, args.repeat, scratch)
    rows = _backup_rows("on", ours, raw)
    plain = raw_tools.plain_dump_size(url, scratch / "plain.dump")
    rows.append(Row("artifact size, MB (vs plain pg_dump -Fc)", ours["size"] / MB, plain / MB))
    raw_artifact = scratch / "raw.dump.zst"
    rows += _restores(stack, client, backup_id, args.repeat, raw_artifact, "1")
    stack.start_worker(TABLE_CHECKSUMS="false", RESTORE_JOBS="auto")
    ours, raw, _ = _backups(stack, client, url, args.repeat, scratch)
    rows[1:1] = _backup_rows("off", ours, raw)
    rows += _restores(stack, client, backup_id, args.repeat, raw_artifact, "auto")
    rows += _serving(client, stack.port, args)
    return rows


def _backups(stack: AppStack, client: WebClient, url: str, repeat: int, scratch: Path
             ) -> tuple[dict[str, float], dict[str, float], str]:
    """Medians of ours and the raw pipeline, alternating, after an unmeasured warm-up of
    each (the warm-up also waits for the new worker)."""
    ours: dict[str, list[float]] = {"size": []}
    raw: dict[str, list[float]] = {}
    newest = ""
    for run in range(repeat + 1):
        for which in ("ours", "raw") if run % 2 else ("raw", "ours"):
            if which == "ours":
                seconds, peak, newest, size = _our_backup(stack, client)
                _record(ours, run, seconds, peak, size=size)
            else:
                seconds, peak = raw_tools.backup(url, scratch / "raw.dump.zst")
                _record(raw, run, seconds, peak)
            print(f"backup run {run} {which}: {seconds:.2f} s", file=sys.stderr)
    return _medians(ours), _medians(raw), newest


def _record(into: dict[str, list[float]], run: int, seconds: float, peak: Peak,
            **extra: float) -> None:
    if run == 0:
        return  # the warm-up
    measured = {"seconds": seconds, "tree": peak.tree, "python": peak.python,
                "tree_pss": peak.tree_pss, "python_pss": peak.python_pss, **extra}
    for key, value in measured.items():
        into.setdefault(key, []).append(value)


def _medians(values: dict[str, list[float]]) -> dict[str, float]:
    return {key: statistics.median(measured) for key, measured in values.items()}


def _our_backup(stack: AppStack, client: WebClient) -> tuple[float, Peak, str, int]:
    """A full backup through the API, until it completed: seconds, peak RSS, id, size."""
    started = time.monotonic()
    with PeakRss(stack.worker_pid) as peak:
        status, answer = client.api("POST", "/system/backup", {"type": "full"}, WAIT)
        backup_id = str(answer.get("backupId"))
        if status == 202:
            answer = {"backup": _until_ended(stack, client, f"/system/backup/{backup_id}")}
    seconds = time.monotonic() - started
    backup = answer.get("backup") or {}
    if status not in (200, 202) or backup.get("status") != "completed":
        raise RuntimeError(f"our backup did not complete ({status}): {answer}")
    _until_checked(stack, client, backup_id)
    return seconds, peak, backup_id, backup["size"]


def _until_checked(stack: AppStack, client: WebClient, backup_id: str) -> None:
    """Wait (unmeasured) for the integrity check the worker queues after every backup: it
    reads the whole artifact, and would otherwise share the CPUs with the next run."""
    while True:
        stack.check_alive()
        _, answer = client.api("GET", f"/system/backup/{backup_id}")
        if answer.get("verification") != "unverified":
            return
        time.sleep(0.1)


def _until_ended(stack: AppStack, client: WebClient, path: str) -> dict[str, object]:
    """Poll a backup or restore until its job ended (when Prefer: wait ran out)."""
    while True:
        stack.check_alive()
        _, answer = client.api("GET", path)
        if answer.get("status") in ENDED:
            return answer
        time.sleep(0.1)


def _backup_rows(mode: str, ours: dict[str, float], raw: dict[str, float]) -> list[Row]:
    rows = [Row(f"full backup, checksums {mode}, s", ours["seconds"], raw["seconds"])]
    return rows + (_memory_rows("backup", ours, raw) if mode == "on" else [])


def _memory_rows(work: str, ours: dict[str, float], raw: dict[str, float]) -> list[Row]:
    """Pss counts a page shared by several processes (a forked work horse and its worker)
    once; the Rss sum, as the issue measured, counts it in each."""
    return [
        Row(f"peak Pss, {work}: worker tree, MB", ours["tree_pss"] / MB, raw["tree_pss"] / MB),
        Row(f"peak Pss, {work}: Python processes, MB", ours["python_pss"] / MB, None),
        Row(f"peak Rss summed, {work}: worker tree, MB", ours["tree"] / MB, raw["tree"] / MB),
    ]


def _restores(stack: AppStack, client: WebClient, backup_id: str, repeat: int,
              raw_artifact: Path, jobs: str) -> list[Row]:
    """Restores into new databases, ours (the worker's RESTORE_JOBS is ``jobs``) and the
    raw serial pipeline alternating, each dropped afterwards."""
    server = stack.postgres.url()
    ours: dict[str, list[float]] = {}
    raw: dict[str, list[float]] = {}
    for run in range(repeat):
        for which in ("ours", "raw") if run % 2 else ("raw", "ours"):
            name = f"bench_restore_{jobs}_{which}_{run}"
            if which == "ours":
                seconds, peak, used = _our_restore(stack, client, backup_id, name)
                _record(ours, run + 1, seconds, peak, jobs=used)
            else:
                seconds, peak = raw_tools.restore(server, name, raw_artifact)
                _record(raw, run + 1, seconds, peak)
            stack.postgres.drop_database(name)
            print(f"restore run {run} {which} ({jobs}): {seconds:.2f} s", file=sys.stderr)
    mine, theirs = _medians(ours), _medians(raw)
    rows = [Row(f"restore into a new database, RESTORE_JOBS={jobs}, s", mine["seconds"],
                theirs["seconds"]),
            Row(f"restore, RESTORE_JOBS={jobs}: pg_restore jobs used", mine["jobs"], None)]
    return rows + (_memory_rows("restore", mine, theirs) if jobs == "1" else [])


def _our_restore(stack: AppStack, client: WebClient, backup_id: str, name: str
                 ) -> tuple[float, Peak, int]:
    """A restore through the API until it completed: seconds, peak memory, and the
    pg_restore jobs it ran with."""
    started = time.monotonic()
    with PeakRss(stack.worker_pid) as peak:
        status, answer = client.api("POST", "/system/backup/restore",
                                    {"backupId": backup_id, "targetDatabase": name}, WAIT)
        if status == 202:
            answer = _until_ended(stack, client, f"/system/backup/restore/{answer['restoreId']}")
    seconds = time.monotonic() - started
    if status not in (200, 202) or answer.get("status") != "completed":
        raise RuntimeError(f"our restore did not complete ({status}): {answer}")
    return seconds, peak, int(answer["result"]["restoreJobs"])


def _serving(client: WebClient, port: int, args: argparse.Namespace) -> list[Row]:
    """The backup list under load (API, then the dashboard fragment), rendered and as an
    unchanged poll answers it, and the index."""
    api = {"Authorization": f"Bearer {client.token}"}
    fragment = client.page_headers(htmx=True)
    loads = (
        ("GET /api/system/backup", lambda: ("/api/system/backup", api, 200)),
        ("same, unchanged (If-None-Match: 304)", lambda: (
            "/api/system/backup", {**api, "If-None-Match": _tag(client, "/api/system/backup",
                                                                api)}, 304)),
        ("list fragment /system/backup/list", lambda: ("/system/backup/list", fragment, 200)),
        ("same, unchanged poll (seen=: 204)", lambda: (
            f"/system/backup/list?seen={_seen(client, fragment)}", fragment, 204)),
    )
    rows = []
    for label, request in loads:
        load = _load(port, request, args)
        rows += [Row(f"{label}, {args.clients} clients: p50 ms", load.p50 * 1000, None),
                 Row(f"{label}, {args.clients} clients: p95 ms", load.p95 * 1000, None),
                 Row(f"{label}, {args.clients} clients: req/s", load.per_second, None)]
    client.page("/system/backup")
    pages = [client.page("/system/backup") for _ in range(max(args.repeat, 1))]
    rows += [Row("dashboard index, KB of HTML", len(pages[0][0]) / 1000, None),
             Row("dashboard index, ms for one request",
                 statistics.median(seconds for _, seconds in pages) * 1000, None)]
    return rows


def _load(port: int, request: Callable[[], tuple[str, dict[str, str], int]],
          args: argparse.Namespace) -> Load:
    """One load, warmed up first (templates compiled, pools filled). The fragment's tag
    changes with the minute (its ages read '5 min ago'): a load that a turning minute cut
    short is run once more with the new tag."""
    for attempt in (1, 2):
        path, headers, expect = request()
        run_load(port, path, headers, 1, 2, expect)
        try:
            return run_load(port, path, headers, args.clients, args.requests, expect)
        except UnexpectedAnswer:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _seen(client: WebClient, fragment: dict[str, str]) -> str:
    return _tag(client, "/system/backup/list", fragment).removeprefix('W/"').rstrip('"')


def _tag(client: WebClient, path: str, headers: dict[str, str]) -> str:
    """The list's ETag as its first answer gives it."""
    status, answer, _ = client.request("GET", path, headers=headers)
    etag = {name.lower(): value for name, value in answer.items()}.get("etag")
    if status != 200 or not etag:
        raise RuntimeError(f"GET {path} answered {status} without an ETag")
    return etag


if __name__ == "__main__":
    sys.exit(main())
