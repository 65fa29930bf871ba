"""Peak resident memory of a process tree, sampled from /proc in a background thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

INTERVAL = 0.05  # seconds between samples


@dataclass
class Peak:
    """Largest sums of VmRSS seen in one sample, in bytes: the whole tree, its Python
    processes only."""

    tree: int = 0
    python: int = 0


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(parent, []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children, pending, found = _children(), [pid], []
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def _rss_and_name(pid: int) -> tuple[int, str]:
    """VmRSS in bytes and the process's name; (0, "") for one that is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, ""
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = fields.get("VmRSS", "0 kB").split()[0]  # kernel threads have none
    return int(rss) * 1024, fields.get("Name", "").strip()


def _is_python(pid: int, name: str) -> bool:
    """rq names its processes (``rq:worker:...``), so look at the executable too."""
    if name.startswith(("python", "rq", "flask", "gunicorn")):
        return True
    try:
        return Path(f"/proc/{pid}/exe").resolve().name.startswith("python")
    except OSError:
        return False


def sample(pid: int) -> Peak:
    """One sample of the tree below ``pid``."""
    tree = python = 0
    for member in descendants(pid):
        rss, name = _rss_and_name(member)
        tree += rss
        if rss and _is_python(member, name):
            python += rss
    return Peak(tree, python)


class PeakRss:
    """``with PeakRss(pid) as peak:`` samples the tree every 50 ms until the block ends;
    ``peak.tree`` and ``peak.python`` then hold the largest sums seen."""

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
            current = sample(self.pid)
            self.peak.tree = max(self.peak.tree, current.tree)
            self.peak.python = max(self.peak.python, current.python)
            if self._stop.wait(INTERVAL):
                return
