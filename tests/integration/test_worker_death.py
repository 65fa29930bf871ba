"""A worker killed mid-backup leaves neither a "running" row nor a complete-looking file."""

from __future__ import annotations

from pathlib import Path

from services.extensions import db
from services.models import Backup
from tests.support.workers import kill_tree, start_worker, wait_for, worker_env

SLOW_PG_DUMP = """#!/bin/sh
# Real pg_dump, but the stream stalls after 64 KiB so the test can kill the worker mid-dump.
case "$*" in *--version*) exec {real} "$@";; esac
{real} "$@" | {{ head -c 65536; sleep 600; }}
"""


def test_killed_worker_is_reconciled_when_a_worker_starts(app, api, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "pg_dump"
    wrapper.write_text(SLOW_PG_DUMP.format(real="/usr/bin/pg_dump"))
    wrapper.chmod(0o755)
    env = worker_env(app, bindir)
    created = api.post("/api/system/backup", json={"type": "full", "compress": False})
    backup_id = created.get_json()["backupId"]
    partial = Path(app.config["BACKUP_DIR"]) / f".{backup_id}.dump.partial"

    def status() -> str:
        with app.app_context():
            db.session.expire_all()
            return db.session.get(Backup, backup_id).status

    worker = start_worker(env)
    try:
        wait_for(lambda: status() == "running" and partial.exists()
                 and partial.stat().st_size > 0)
    finally:
        kill_tree(worker.pid)
        worker.wait()
    assert status() == "running"
    assert not (Path(app.config["BACKUP_DIR"]) / f"{backup_id}.dump").exists()

    replacement = start_worker(env, "--burst")
    assert replacement.wait(60) == 0
    with app.app_context():
        backup = db.session.get(Backup, backup_id)
        assert backup.status == "failed"
        assert "died" in backup.error
        assert backup.finished_at is not None
    assert list(Path(app.config["BACKUP_DIR"]).iterdir()) == []
