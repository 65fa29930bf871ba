"""The fault suite's tools: gated pg_dump/pg_restore wrappers, event waits, the processes
and PostgreSQL sessions of one test, and the per-test context (``Fault``).

Nothing here sleeps for a fixed time to hit a moment: the wrappers stall the real tool's
stream after a number of bytes and say so in a file, and the tests poll that file,
pg_stat_activity and the catalog with a short interval and a deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select

from services.extensions import db
from services.models import Backup, utcnow
from tests.support.dbcompare import schema_dump, table_fingerprints
from tests.support.workers import kill_tree, start_worker, worker_env
from tools.localservices import PostgresServer

POLL = 0.1
# Uncompressed archive bytes let through before a gated tool stalls. Pagila's archive is
# about 3.6 MB and its table of contents well under 100 kB, so at 1 MB pg_dump is dumping
# table data and pg_restore has connected and is restoring table data.
STALL_AFTER = 1_000_000
# Environment variable carried by every process a test starts: the worker, its work horse
# and RQ scheduler, and (PG* variables pass the engine's allow-list) pg_dump, pg_restore
# and the wrappers' shells. libpq ignores names it does not know.
TAG_VARIABLE = "PGFAULTTAG"


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` every POLL seconds until it returns something truthy; return it.
    AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL)


# --------------------------------------------------------------------------- wrappers

_PG_DUMP = """#!/bin/bash
# The real pg_dump, exec'd (same pid, same process group, same parent-death signal as an
# unwrapped one). Armed by the test (an arm-pg_dump file holding a byte count), one run
# has its archive pass through a gate that lets that many bytes through, writes
# stalled-pg_dump, and holds the rest until the file release appears, or pg_dump is gone.
# pg_dump blocks on the full pipe, connected, meanwhile.
REAL={real}
GATE={gate}
if [[ "$*" != *--version* ]] && mv "$GATE/arm-pg_dump" "$GATE/fired-pg_dump.$$" 2>/dev/null; then
  N=$(cat "$GATE/fired-pg_dump.$$")
  exec 3>&1
  exec "$REAL" "$@" > >(
    head -c "$N" >&3; echo $$ > "$GATE/stalled-pg_dump"
    until [ -e "$GATE/release" ] || ! kill -0 $$ 2>/dev/null; do sleep 0.05; done
    exec cat >&3) 3>&-
fi
exec "$REAL" "$@"
"""

_PG_RESTORE = """#!/bin/bash
# The real pg_restore, exec'd. Armed by the test, one restore proper (--single-transaction;
# never --list or a TOC read) reads its archive through a gate that lets that many bytes
# through, writes stalled-pg_restore, and holds the rest until the file release appears,
# or pg_restore is gone. pg_restore waits, connected and inside its transaction.
REAL={real}
GATE={gate}
if [[ "$*" == *--single-transaction* ]] \\
    && mv "$GATE/arm-pg_restore" "$GATE/fired-pg_restore.$$" 2>/dev/null; then
  N=$(cat "$GATE/fired-pg_restore.$$")
  exec 3<&0
  exec "$REAL" "$@" < <(
    head -c "$N" <&3; echo $$ > "$GATE/stalled-pg_restore"
    until [ -e "$GATE/release" ] || ! kill -0 $$ 2>/dev/null; do sleep 0.05; done
    exec cat <&3) 3<&-
fi
exec "$REAL" "$@"
"""


class ToolGate:
    """pg_dump and pg_restore wrappers in ``bindir`` (put first on the worker's PATH) that
    pass everything through unless armed; an armed tool stalls once, mid-stream."""

    def __init__(self, bindir: Path, gatedir: Path) -> None:
        self.bindir, self.dir = bindir, gatedir
        bindir.mkdir(parents=True, exist_ok=True)
        gatedir.mkdir(parents=True, exist_ok=True)
        for tool, template in (("pg_dump", _PG_DUMP), ("pg_restore", _PG_RESTORE)):
            real = shutil.which(tool)
            if real is None:
                raise AssertionError(f"{tool} not found on PATH: install postgresql-client")
            script = bindir / tool
            script.write_text(template.format(real=shlex.quote(real),
                                              gate=shlex.quote(str(gatedir))))
            script.chmod(0o755)

    def arm(self, tool: str, after_bytes: int = STALL_AFTER) -> None:
        (self.dir / f"arm-{tool}").write_text(str(after_bytes))

    def stalled(self, tool: str) -> bool:
        return (self.dir / f"stalled-{tool}").exists()

    def release(self) -> None:
        (self.dir / "release").touch()


# --------------------------------------------------------------------------- processes

def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()[:160]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def tagged_processes(tag: str) -> dict[int, str]:
    """Live processes (pid -> command line) whose environment carries ``tag``."""
    marker = f"{TAG_VARIABLE}={tag}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if marker in _environ(pid).split(b"\0") and not _is_zombie(pid):
                found[pid] = _cmdline(pid)
    return found


def describe_processes(processes: dict[int, str]) -> str:
    return "; ".join(f"pid {pid}: {cmd}" for pid, cmd in sorted(processes.items()))


# --------------------------------------------------------------------------- PostgreSQL

def databases(pg_server: PostgresServer) -> set[str]:
    with pg_server.connect() as conn:
        return {name for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE NOT datistemplate")}


def backends(pg_server: PostgresServer, where: str = "true",
             params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Client sessions other than ours: pid, datname, application_name, state, query."""
    with pg_server.connect() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "SELECT pid, datname, application_name, state, query, backend_xmin::text AS xmin"
            " FROM pg_stat_activity WHERE backend_type = 'client backend'"
            f" AND pid <> pg_backend_pid() AND ({where}) ORDER BY pid", params).fetchall()


def terminate_backend(pg_server: PostgresServer, pid: int) -> None:
    with pg_server.connect() as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()[0], (
            f"pg_terminate_backend({pid}) did not end the session")


def protected_state(url: str) -> tuple[str, dict[str, tuple[int, str]]]:
    return schema_dump(url), table_fingerprints(url)


def state_difference(before: tuple[str, dict], after: tuple[str, dict]) -> str:
    """A one-line summary of how two protected_state results differ."""
    parts = []
    if before[0] != after[0]:
        parts.append("the schema changed")
    tables_before, tables_after = before[1], after[1]
    changed = sorted(name for name in tables_before.keys() | tables_after.keys()
                     if tables_before.get(name) != tables_after.get(name))
    if changed:
        parts.append(f"tables differ: {', '.join(changed[:8])}"
                     + (" ..." if len(changed) > 8 else ""))
    return "; ".join(parts) or "no difference"


def change_the_database(url: str) -> None:
    """A visible change after a backup, so "restored" and "untouched" can be told apart."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE actor SET first_name = 'CHANGED' WHERE actor_id <= 20")
        conn.execute("DELETE FROM payment WHERE payment_id % 7 = 0")
        conn.execute("CREATE TABLE after_the_backup (id int PRIMARY KEY)")


# --------------------------------------------------------------------------- the context

@dataclass
class Fault:
    """One fault test's world: its app and catalog, the server, its workers and wrappers,
    and what the invariant checker compares against."""

    app: Any
    pg_server: PostgresServer
    api: Any
    run_worker: Callable[[], None]
    tmp_path: Path
    # the protected database as it must stay unless an overwrite restore completes: given
    # (a fresh copy of a known template), or taken now
    untouched: tuple[str, dict] | None = None
    tag: str = field(default_factory=lambda: secrets.token_hex(6))
    expectations: list[str] = field(default_factory=list)
    workers: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate = ToolGate(self.tmp_path / "faultbin", self.tmp_path / "gate")
        self.database = self.app.config["TARGET_DATABASE"]
        self.protected_url = self.app.config["DATABASE_URL"]
        self.backup_dir = Path(self.app.config["BACKUP_DIR"])
        self.known_databases = databases(self.pg_server)
        if self.untouched is None:
            self.remember_protected()
        self.untouched_at: datetime = utcnow()

    # ----------------------------------------------------------------- expectations
    def expect(self, condition: Any, message: str) -> bool:
        """A test-specific requirement, reported together with the invariants."""
        if not condition:
            self.expectations.append(message)
        return bool(condition)

    def remember_protected(self) -> None:
        """Take the protected database's state now (after the test changed it on purpose):
        from here on it must stay so unless an overwrite restore completes."""
        self.untouched = protected_state(self.protected_url)
        self.untouched_at = utcnow()

    # ----------------------------------------------------------------- workers
    def env(self) -> dict[str, str]:
        return {**worker_env(self.app, self.gate.bindir), TAG_VARIABLE: self.tag}

    def start_worker(self, *extra: str) -> subprocess.Popen:
        worker = start_worker(self.env(), *extra)
        self.workers.append(worker)
        return worker

    def settle(self) -> None:
        """A new worker starts, as after any crash: a BackupSimpleWorker in this process
        (the same reconciling class as the production BackupWorker, without the fork),
        in burst mode. It reconciles the catalog at birth, runs what is queued, and
        stops."""
        try:
            self.run_worker()
        except Exception as exc:
            self.expect(False, f"the worker started after the fault crashed: {exc!r}")

    def stop_worker(self, worker: subprocess.Popen, timeout: float = 30) -> None:
        """SIGTERM (a warm shutdown: RQ lets a running job finish) and wait for the exit."""
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout)
            except subprocess.TimeoutExpired:
                self.expect(False, f"worker {worker.pid} did not stop within {timeout:g} s of "
                            "SIGTERM")
                kill_tree(worker.pid)
                worker.wait()

    def expect_job_processes_end(self, within: float, after: str) -> None:
        """Every process of the test must be gone ``within`` seconds; leftovers are
        reported, then killed so the rest of the test can go on."""
        try:
            wait_until(lambda: not tagged_processes(self.tag), within, "processes to end")
        except AssertionError:
            leftovers = tagged_processes(self.tag)
            self.expect(False, f"{within:g} s {after}, processes of the job were still "
                        f"running: {describe_processes(leftovers)}")
            self.kill_leftovers()

    def kill_leftovers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                kill_tree(worker.pid)
        deadline = time.monotonic() + 15
        while (left := tagged_processes(self.tag)) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(POLL)
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(5)

    def worker_log_tail(self, lines: int = 15) -> str:
        log = os.environ.get("WORKER_LOG")
        if not log or not Path(log).exists():
            return ""
        tail = Path(log).read_text(errors="replace").splitlines()[-lines:]
        return "\n    worker log: " + "\n    ".join(tail)

    # ----------------------------------------------------------------- waiting for moments
    def wait_stalled(self, tool: str, database_like: str, timeout: float = 60) -> dict:
        """Until the armed ``tool`` has stalled and its session on a database matching the
        LIKE pattern ``database_like`` is in pg_stat_activity; returns that session."""
        def stalled() -> dict | None:
            if not self.gate.stalled(tool):
                return None
            sessions = backends(self.pg_server, "application_name = %s AND datname LIKE %s",
                                (tool, database_like))
            return sessions[0] if sessions else None

        return wait_until(stalled, timeout, f"{tool} to stall mid-stream, connected to "
                          f"{database_like}{self.worker_log_tail()}")

    # ----------------------------------------------------------------- catalog
    def row(self, model: Any, row_id: str) -> Any:
        with self.app.app_context():
            row = db.session.get(model, row_id)
            if row is not None:
                db.session.expunge(row)
            return row

    def rows(self, model: Any) -> list[Any]:
        with self.app.app_context():
            found = list(db.session.scalars(select(model)))
            for row in found:
                db.session.expunge(row)
            return found

    def wait_row(self, model: Any, row_id: str, statuses: tuple[str, ...],
                 timeout: float = 60) -> Any:
        return wait_until(
            lambda: (row := self.row(model, row_id)) is not None and row.status in statuses
            and row, timeout, f"{model.__name__.lower()} {row_id} to be {' or '.join(statuses)}"
            f"{self.worker_log_tail()}")

    # ----------------------------------------------------------------- API shortcuts
    def post_backup(self, **body: Any) -> str:
        response = self.api.post("/api/system/backup", json={"type": "full", **body})
        assert response.status_code == 202, response.get_json()
        return response.get_json()["backupId"]

    def completed_backup(self, **body: Any) -> str:
        """A backup taken by an in-process worker, before any fault."""
        backup_id = self.post_backup(**body)
        self.run_worker()
        row = self.row(Backup, backup_id)
        assert row.status == "completed", f"the backup before the fault failed: {row.error}"
        return backup_id

    def restore(self, **body: Any) -> Any:
        return self.api.post("/api/system/backup/restore", json=body)

    def stalling_new_database_restore(self) -> tuple[str, str]:
        """Ask for a restore of a new backup into a new database whose pg_restore will
        stall; returns the restore's id and the target's name."""
        backup_id = self.completed_backup()
        self.gate.arm("pg_restore")
        target = new_database_name()
        response = self.restore(backupId=backup_id, targetDatabase=target)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["restoreId"], target

    # ----------------------------------------------------------------- teardown
    def cleanup(self) -> None:
        self.gate.release()
        self.kill_leftovers()
        for name in databases(self.pg_server) - self.known_databases:
            with contextlib.suppress(psycopg.Error):
                with self.pg_server.connect() as conn:
                    conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                self.pg_server.drop_database(name)


def new_database_name() -> str:
    return f"fault_copy_{secrets.token_hex(4)}"


def single_line(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()
