"""Real `rq worker` (and `flask scheduler`) processes for tests that need a separate
worker process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SLOW_PG_DUMP = """#!/bin/sh
# Real pg_dump, but the stream stalls after 64 KiB so the test can stop the worker mid-dump.
case "$*" in *--version*) exec {real} "$@";; esac
{real} "$@" | {{ head -c 65536; sleep 600; }}
"""


GATED_PG_DUMP = """#!/bin/sh
# Real pg_dump, whose stream pauses after {first} bytes until {gate} exists, then goes on:
# the test acts at a known point of the dump (dd reads exactly that much, unlike head).
case "$*" in *--version*) exec {real} "$@";; esac
{real} "$@" | {{ dd bs={block} count={blocks} iflag=fullblock status=none; \
  while [ ! -e {gate} ]; do sleep 0.05; done; cat; }}
"""


def install_gated_pg_dump(bindir: Path, first_mib: int, gate: Path,
                          real: str = "/usr/bin/pg_dump") -> None:
    """Put a pg_dump in ``bindir`` that pauses after ``first_mib`` MiB until ``gate``
    exists (see GATED_PG_DUMP)."""
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "pg_dump"
    wrapper.write_text(GATED_PG_DUMP.format(real=real, first=first_mib * 2**20, gate=gate,
                                            block=2**20, blocks=first_mib))
    wrapper.chmod(0o755)


def install_slow_pg_dump(bindir: Path, real: str = "/usr/bin/pg_dump") -> None:
    """Put a pg_dump in ``bindir`` whose output stalls after 64 KiB (see SLOW_PG_DUMP)."""
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "pg_dump"
    wrapper.write_text(SLOW_PG_DUMP.format(real=real))
    wrapper.chmod(0o755)


def worker_env(app, bindir: Path) -> dict[str, str]:
    return {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "METADATA_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "BACKUP_DIR": app.config["BACKUP_DIR"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "CHANGE_CAPTURE": "true" if app.config["CHANGE_CAPTURE"] else "false",
        **({"BACKUP_AGE_IDENTITIES": app.config["BACKUP_AGE_IDENTITIES"]}
           if app.config.get("BACKUP_AGE_IDENTITIES") else {}),
    }


ALL_QUEUES = ("notifications", "restores", "backups", "verifications")


def start_worker(env: dict[str, str], *extra: str,
                 queues: tuple[str, ...] = ALL_QUEUES) -> subprocess.Popen:
    rq = Path(sys.executable).with_name("rq")
    log = open(os.environ.get("WORKER_LOG", os.devnull), "ab")  # noqa: SIM115
    return subprocess.Popen(
        [str(rq), "worker", "--url", env["REDIS_URL"], "--worker-class",
         "jobs.worker.BackupWorker", "--with-scheduler", *extra, *queues],
        cwd=ROOT, env=env, start_new_session=True,
        stdout=log, stderr=subprocess.STDOUT,
    )


def start_scheduler(env: dict[str, str]) -> subprocess.Popen:
    flask = Path(sys.executable).with_name("flask")
    return subprocess.Popen([str(flask), "--app", "app", "scheduler", "--interval", "1"],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once, as a crash of the machine would:
    unlike a killed worker's horse (see jobs.worker), none of them gets to clean up."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pending, doomed = [pid], []
    while pending:
        current = pending.pop()
        doomed.append(current)
        pending.extend(children.get(current, []))
    for victim in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def processes_with_env(entry: str) -> list[int]:
    """Live processes (zombies have no environment) whose environment holds ``entry``
    (``NAME=value``), wherever they were reparented: for a worker started with
    :func:`worker_env`, ``PATH=...`` marks it and everything it started."""
    marker = f"\0{entry}\0".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if marker in b"\0" + environ.read_bytes():
                found.append(int(environ.parent.name))
    return found


def kill_processes_with_env(entry: str) -> None:
    for pid in processes_with_env(entry):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
