"""``python -m tools.datagen --url URL [--scale S] [--seed N]``: load the demo rental shop."""

from __future__ import annotations

import argparse
import sys
import time

from tools.datagen import generate

CLEAR_LINE = "\r\x1b[K"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.datagen",
        description="Create a deterministic film-rental-shop database in an empty database.",
    )
    parser.add_argument("--url", required=True, help="postgresql:// URL of an empty database")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size factor: 1 is ~35,000 rows, 500 is gigabytes (default 1)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    args = parser.parse_args(argv)

    live = sys.stderr.isatty()
    started = time.monotonic()
    counts = generate(args.url, args.scale, args.seed, progress=_show_progress if live else None)
    elapsed = time.monotonic() - started
    if live:
        print(CLEAR_LINE, end="", file=sys.stderr)
    for table, rows in counts.items():
        print(f"{table:<12} {rows:>12,}")
    print(f"{'total':<12} {sum(counts.values()):>12,} rows in {elapsed:.1f}s"
          f" (scale {args.scale:g}, seed {args.seed})")
    return 0


def _show_progress(table: str, rows: int) -> None:
    print(f"{CLEAR_LINE}{table}: {rows:,} rows", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
