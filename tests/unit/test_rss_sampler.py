"""The benchmark's memory sampler: Pss counts a page a forked child shares with its parent
once, Rss twice; processes are sorted into kinds as the worker's tree has them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tools.benchmarks.rss import PeakRss, Usage, descendants, sample, usage

MB = 1 << 20
# A parent that fills 64 MB, then forks: a child that leads its own process group (as rq's
# work horse does), one that does not (as rq's scheduler process), and a `sleep`.
FAMILY = """
import os, signal, subprocess, sys, time
block = bytearray(os.urandom(64 << 20))
def child(own_group):
    if os.fork() == 0:
        if own_group:
            os.setpgrp()
        time.sleep(60)
        os._exit(0)
child(True)
child(False)
subprocess.Popen(["sleep", "60"])
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def family() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE,
                               start_new_session=True)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    time.sleep(0.2)  # the last child has exec'd sleep
    yield process.pid
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)


def test_a_gone_process_uses_nothing() -> None:
    assert usage(2**22 + 7) == Usage()


def test_shared_pages_count_once_in_pss_and_kinds_are_told_apart(family: int) -> None:
    assert len(descendants(family)) == 4
    taken = sample(family)
    assert set(taken.kinds) == {"worker", "horse", "other Python", "other"}
    worker, horse = taken.kinds["worker"], taken.kinds["horse"]
    assert worker.rss > 64 * MB and horse.rss > 64 * MB  # both map the 64 MB block
    assert worker.uss < 32 * MB and horse.uss < 8 * MB  # ... shared by three processes
    tree, python = taken.total(), taken.total(python_only=True)
    assert tree.rss > 3 * 64 * MB > tree.pss > 64 * MB  # Pss counts the block once
    assert python.pss < tree.pss and python.rss < tree.rss


def test_the_peak_holds_the_largest_sums(family: int) -> None:
    with PeakRss(family) as peak:
        time.sleep(0.2)
    assert peak.tree > 3 * 64 * MB > peak.tree_pss > 64 * MB
    assert peak.python <= peak.tree and peak.python_pss <= peak.tree_pss
    assert peak.kinds["horse"].rss > 64 * MB
