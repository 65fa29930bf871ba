"""Peak memory of a process tree, sampled from /proc in a background thread.

Each sample reads every process's ``/proc/<pid>/smaps_rollup``: Rss (what ``ps`` shows),
Pss (each shared page divided among the processes that map it, so a tree's sum counts a
page once: the fair figure for a forked work horse, which shares its parent's pages until
either writes them) and USS (the pages only that process maps: what it costs on its own).
The sums are kept per kind of process (the worker, its work horse, pg_dump or pg_restore,
...), and the peak of each is the largest sum one sample saw.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

INTERVAL = 0.05  # seconds between samples
TOOLS = ("pg_dump", "pg_restore")
PYTHON_KINDS = ("worker", "horse", "other Python")
KINDS = (*PYTHON_KINDS, "pg_dump/pg_restore", "other")


@dataclass
class Usage:
    """Memory in bytes: Rss, Pss and USS (private pages)."""

    rss: int = 0
    pss: int = 0
    uss: int = 0

    def add(self, other: Usage) -> None:
        self.rss += other.rss
        self.pss += other.pss
        self.uss += other.uss

    def keep_max(self, other: Usage) -> None:
        self.rss = max(self.rss, other.rss)
        self.pss = max(self.pss, other.pss)
        self.uss = max(self.uss, other.uss)


@dataclass
class Peak:
    """The largest sums seen in one sample: ``tree`` and ``python`` are Rss (the whole tree,
    its Python processes only), ``tree_pss`` and ``python_pss`` the same in Pss, and
    ``kinds`` each kind's own peak (a kind's peaks may come from different samples)."""

    tree: int = 0
    python: int = 0
    tree_pss: int = 0
    python_pss: int = 0
    kinds: dict[str, Usage] = field(default_factory=dict)

    def merge(self, sample: Sample) -> None:
        tree, python = sample.total(), sample.total(python_only=True)
        self.tree = max(self.tree, tree.rss)
        self.python = max(self.python, python.rss)
        self.tree_pss = max(self.tree_pss, tree.pss)
        self.python_pss = max(self.python_pss, python.pss)
        for kind, usage in sample.kinds.items():
            self.kinds.setdefault(kind, Usage()).keep_max(usage)


@dataclass
class Sample:
    """One look at the tree: the sums per kind."""

    kinds: dict[str, Usage] = field(default_factory=dict)

    def total(self, python_only: bool = False) -> Usage:
        total = Usage()
        for kind, usage in self.kinds.items():
            if not python_only or kind in PYTHON_KINDS:
                total.add(usage)
        return total


@dataclass(frozen=True)
class Proc:
    """What /proc/<pid>/stat says of one process."""

    pid: int
    parent: int
    group: int
    name: str


def _processes() -> dict[int, Proc]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            found[int(stat.parent.name)] = Proc(int(stat.parent.name), int(fields[1]),
                                                int(fields[2]), name)
        except (OSError, IndexError, ValueError):
            continue
    return found


def descendants(pid: int, processes: dict[int, Proc] | None = None) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for proc in (_processes() if processes is None else processes).values():
        children.setdefault(proc.parent, []).append(proc.pid)
    pending, found = [pid], []
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def usage(pid: int) -> Usage:
    """The process's memory from smaps_rollup; zeros for one that is gone (or a kernel
    thread, which has none)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return Usage()
    kb = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(":")
        kb[name] = int(value.split()[0]) if value.strip() else 0
    return Usage(kb.get("Rss", 0) * 1024, kb.get("Pss", 0) * 1024,
                 (kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)) * 1024)


def _is_python(pid: int, name: str) -> bool:
    """rq names its processes (``rq:worker:...``), so look at the executable too."""
    if name.startswith(("python", "rq", "flask", "gunicorn")):
        return True
    try:
        return Path(f"/proc/{pid}/exe").resolve().name.startswith("python")
    except OSError:
        return False


def kind_of(proc: Proc, root: int) -> str:
    """The root is the worker; a Python process that leads its own process group is a
    work horse (rq's horse calls setpgrp; its scheduler process does not)."""
    if proc.name in TOOLS:
        return "pg_dump/pg_restore"
    if not _is_python(proc.pid, proc.name):
        return "other"
    if proc.pid == root:
        return "worker"
    return "horse" if proc.group == proc.pid else "other Python"


def sample(pid: int) -> Sample:
    """One sample of the tree below ``pid``."""
    processes = _processes()
    taken = Sample()
    for member in descendants(pid, processes):
        proc = processes.get(member)
        measured = usage(member)
        if proc is None or not measured.rss:
            continue
        taken.kinds.setdefault(kind_of(proc, pid), Usage()).add(measured)
    return taken


class PeakRss:
    """``with PeakRss(pid) as peak:`` samples the tree every 50 ms until the block ends;
    ``peak`` then holds the largest sums seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = Peak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self.peak

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.peak.merge(sample(self.pid))
            if self._stop.wait(INTERVAL):
                return
