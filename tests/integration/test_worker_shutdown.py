"""A stopped or killed worker stops its job's pg_dump too, and the job ends failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.extensions import db
from services.models import Backup
from tests.support.workers import (
    ROOT,
    install_slow_pg_dump,
    kill_processes_with_env,
    processes_with_env,
    start_worker,
    wait_for,
    worker_env,
)

SHUTDOWN_BOUND = 15.0  # seconds from SIGTERM to a busy worker's exit


@pytest.fixture
def dumping(app, api, tmp_path):
    """A real worker (its own session and group) in the middle of a stalled backup; yields
    (worker, env, backup id). Afterwards nothing it started may still run."""
    bindir = tmp_path / "bin"
    install_slow_pg_dump(bindir)
    env = worker_env(app, bindir)
    backup_id = api.post("/api/system/backup", json={"type": "full", "compress": False}
                         ).get_json()["backupId"]
    partial = Path(app.config["BACKUP_DIR"]) / f".{backup_id}.dump.partial"
    worker = start_worker(env)
    try:
        wait_for(lambda: backup_of(app, backup_id).status == "running" and partial.exists()
                 and partial.stat().st_size > 0)
        yield worker, env, backup_id
    finally:
        kill_processes_with_env(f"PATH={env['PATH']}")
        worker.wait()


def backup_of(app, backup_id: str) -> Backup:
    with app.app_context():
        db.session.expire_all()
        backup = db.session.get(Backup, backup_id)
        db.session.expunge(backup)
        return backup


def test_killing_the_workers_group_stops_its_pg_dump(app, dumping):
    worker, env, backup_id = dumping
    os.killpg(worker.pid, signal.SIGKILL)  # the group only: horse and pg_dump are not in it
    worker.wait()
    wait_for(lambda: processes_with_env(f"PATH={env['PATH']}") == [], timeout=10)

    replacement = start_worker(env, "--burst")
    assert replacement.wait(60) == 0
    backup = backup_of(app, backup_id)
    assert backup.status == "failed"
    assert "worker died" in backup.error
    assert list(Path(app.config["BACKUP_DIR"]).iterdir()) == []


def test_a_terminated_worker_interrupts_its_job_and_exits(app, dumping):
    worker, env, backup_id = dumping
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(SHUTDOWN_BOUND)
    print(f"worker exited {time.monotonic() - started:.1f} s after SIGTERM")
    wait_for(lambda: processes_with_env(f"PATH={env['PATH']}") == [], timeout=5)
    backup = backup_of(app, backup_id)
    assert backup.status == "failed"
    assert "interrupted: its worker is shutting down" in backup.error
    assert list(Path(app.config["BACKUP_DIR"]).iterdir()) == []


CHILD = """
import importlib, os, sys, time
module, name = sys.argv[1].split(":")
running = getattr(importlib.import_module(module), name)
with running(["sleep", "600"], dict(os.environ)) as (process, _):
    print(process.pid, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("start", ["pgbackup.pgdump:running", "pgbackup.restore:_running"])
def test_a_tool_process_dies_with_the_process_that_started_it(tmp_path, start):
    marker = f"PGBACKUP_TEST={tmp_path}"
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD, start], cwd=ROOT, stdout=subprocess.PIPE,
        env={**os.environ, "PGBACKUP_TEST": str(tmp_path)},
    )
    try:
        assert parent.stdout is not None
        tool = int(parent.stdout.readline())
        assert tool in processes_with_env(marker)
        parent.kill()
        parent.wait()
        wait_for(lambda: processes_with_env(marker) == [], timeout=5)
    finally:
        kill_processes_with_env(marker)
        parent.wait()
        parent.stdout.close()

