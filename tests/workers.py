"""Real `rq worker` processes for tests that need a separate worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker_env(app, bindir: Path) -> dict[str, str]:
    return {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "METADATA_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "BACKUP_DIR": app.config["BACKUP_DIR"],
        "SECRET_KEY": app.config["SECRET_KEY"],
    }


def start_worker(env: dict[str, str], *extra: str) -> subprocess.Popen:
    rq = Path(sys.executable).with_name("rq")
    log = open(os.environ.get("WORKER_LOG", os.devnull), "ab")  # noqa: SIM115
    return subprocess.Popen(
        [str(rq), "worker", "--url", env["REDIS_URL"], "--worker-class",
         "jobs.worker.BackupWorker", *extra, "backups"],
        cwd=ROOT, env=env, start_new_session=True,
        stdout=log, stderr=subprocess.STDOUT,
    )


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
