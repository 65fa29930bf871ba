"""The worker tree's peak memory during backups and restores, per kind of process and at
several database sizes: ``python -m tools.benchmarks.worker_memory --scales 1,10``.

For each scale: the app as production runs it (tools.benchmarks.appstack), the rental shop
generated, one unmeasured backup, then ``--repeat`` full backups through the API and as
many restores into new databases, each sampled (tools.benchmarks.rss) from the worker's
process down. Prints, per scale and operation, the medians of each kind's peak Rss, Pss
and USS (private pages), and the tree's and its Python processes' sums. Memory that does
not grow with the scale is what "bounded" means here.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from tools.benchmarks import generate
from tools.benchmarks.appstack import AppStack
from tools.benchmarks.rss import KINDS, Peak, sample
from tools.benchmarks.run import _our_backup, _our_restore
from tools.benchmarks.web_client import WebClient

MB = 1e6


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lines = ["| scale | operation | process | Rss MB | Pss MB | USS MB |",
             "|---|---|---|---:|---:|---:|"]
    for scale in args.scales:
        lines += _one_scale(scale, args.repeat, args.seed)
    print("\n".join(lines))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmarks.worker_memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=lambda text: [float(s) for s in text.split(",")],
                        default=[1.0, 10.0], help="generator scales, comma-separated (1,10)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each (3)")
    parser.add_argument("--seed", type=int, default=42)
    return parser


def _one_scale(scale: float, repeat: int, seed: int) -> list[str]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    stack = AppStack(scratch, "shop")
    try:
        url = stack.start_servers()
        generate(url, scale, seed)
        stack.make_accounts()
        stack.start_web()
        stack.start_worker()
        client = WebClient(stack.port, stack.token)
        _, _, backup_id, _ = _our_backup(stack, client)  # warm-up; waits for the worker
        idle = Peak()
        idle.merge(sample(stack.worker_pid))
        backups, restores = [], []
        for run in range(repeat):
            _, peak, _, _ = _our_backup(stack, client)
            backups.append(peak)
            name = f"bench_memory_{run}"
            restores.append(_our_restore(stack, client, backup_id, name)[1])
            stack.postgres.drop_database(name)
            print(f"scale {scale:g} run {run}: done", file=sys.stderr)
        return (_lines(scale, "idle worker", [idle]) + _lines(scale, "backup", backups)
                + _lines(scale, "restore", restores))
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _lines(scale: float, operation: str, peaks: list[Peak]) -> list[str]:
    """Medians of each kind's peaks, then of the sums."""
    def row(what: str, rss: list[int], pss: list[int], uss: list[int] | None) -> str:
        private = "—" if uss is None else f"{statistics.median(uss) / MB:.1f}"
        return (f"| {scale:g} | {operation} | {what} | {statistics.median(rss) / MB:.1f} "
                f"| {statistics.median(pss) / MB:.1f} | {private} |")

    lines = []
    for kind in KINDS:
        seen = [peak.kinds[kind] for peak in peaks if kind in peak.kinds]
        if seen:
            lines.append(row(kind, [u.rss for u in seen], [u.pss for u in seen],
                             [u.uss for u in seen]))
    lines.append(row("**Python processes**", [p.python for p in peaks],
                     [p.python_pss for p in peaks], None))
    lines.append(row("**whole tree**", [p.tree for p in peaks], [p.tree_pss for p in peaks],
                     None))
    return lines


if __name__ == "__main__":
    sys.exit(main())
