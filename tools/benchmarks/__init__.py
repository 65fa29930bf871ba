"""Measurements to run by hand (not part of the test suite):
``python -m tools.benchmarks.<name>``."""

from __future__ import annotations

import sys
import time

import psycopg

from tools import datagen


def generate(url: str, scale: float, seed: int) -> None:
    """Fill the empty database at ``url`` with the generator, then VACUUM ANALYZE it: hint
    bits set, so the first measured scan does not pay for them."""
    started = time.monotonic()
    rows = sum(datagen.generate(url, scale, seed).values())
    print(f"generated {rows:,} rows (scale {scale:g}) in {time.monotonic() - started:.1f} s",
          file=sys.stderr)
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("VACUUM ANALYZE")
