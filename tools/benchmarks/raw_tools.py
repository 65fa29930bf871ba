"""The baselines: what a shop runs by hand, timed with the same RSS sampling as ours."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

from tools.benchmarks.rss import Peak, PeakRss


def run_pipeline(command: str) -> tuple[float, Peak]:
    """Run a shell pipeline (pipefail); its seconds and the peak RSS of its processes."""
    started = time.monotonic()
    process = subprocess.Popen(["bash", "-o", "pipefail", "-c", command],
                               stderr=subprocess.PIPE)
    with PeakRss(process.pid) as peak:
        _, errors = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode:
        raise RuntimeError(f"{command} failed: {errors.decode(errors='replace')}")
    return seconds, peak


def backup(url: str, artifact: Path) -> tuple[float, Peak]:
    """``pg_dump -Fc -Z0 | zstd -T0 -3 > file``."""
    return run_pipeline(f"pg_dump -Fc -Z0 -d {shlex.quote(url)}"
                        f" | zstd -q -T0 -3 > {shlex.quote(str(artifact))}")


def plain_dump_size(url: str, artifact: Path) -> int:
    """The size of a plain ``pg_dump -Fc`` (its own default compression)."""
    run_pipeline(f"pg_dump -Fc -d {shlex.quote(url)} -f {shlex.quote(str(artifact))}")
    return artifact.stat().st_size


def restore(server_url: str, name: str, artifact: Path) -> tuple[float, Peak]:
    """``CREATE DATABASE name``, then ``zstd -dc file | pg_restore -d name`` (ours creates
    its new database too)."""
    target = server_url.rsplit("/", 1)[0] + f"/{name}"
    return run_pipeline(f"psql -X -q -d {shlex.quote(server_url)} -c 'CREATE DATABASE {name}'"
                        f" && zstd -q -dc {shlex.quote(str(artifact))}"
                        f" | pg_restore -d {shlex.quote(target)}")
