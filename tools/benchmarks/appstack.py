"""The app as production runs it, on private servers: the Procfile's ``web`` (gunicorn)
and ``worker`` (``rq worker``) lines, a temporary BACKUP_DIR and SQLite catalog, an admin
user and an admin API token made with the CLI."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools.benchmarks.web_client import WebClient
from tools.localservices import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = secrets.token_urlsafe(18)


def procfile_line(name: str) -> str:
    """The command of the Procfile's ``name:`` line."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        label, _, command = line.partition(":")
        if label.strip() == name:
            return command.strip()
    raise RuntimeError(f"the Procfile has no {name!r} line")


class AppStack:
    """PostgreSQL, Redis, the web and one worker; ``stop()`` ends every process it
    started, whatever state they are in."""

    def __init__(self, scratch: Path, database: str) -> None:
        self.scratch = scratch
        self.postgres = PostgresServer()
        self.redis = RedisServer()
        self.database = database
        self.port = free_port()
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.secret_key = secrets.token_urlsafe(48)

    def start_servers(self) -> str:
        """Start PostgreSQL and Redis; the URL of the (empty) database to protect."""
        self.postgres.start()
        self.redis.start()
        return self.postgres.create_database(self.database)

    def env(self, **overrides: str) -> dict[str, str]:
        catalog = self.scratch / "catalog.sqlite3"
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "DATABASE_URL": self.postgres.url(self.database),
            "REDIS_URL": self.redis.url,
            "METADATA_DATABASE_URL": f"sqlite:///{catalog}",
            "BACKUP_DIR": str(self.scratch / "backups"),
            "SECRET_KEY": self.secret_key,
            # the raw pipeline takes no replication slot, and a slot per full backup
            # would hold WAL for the whole run
            "CHANGE_CAPTURE": "false",
            "BIND_ADDRESS": "127.0.0.1",
            "PORT": str(self.port),
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            **overrides,
        }

    @property
    def catalog(self) -> Path:
        return self.scratch / "catalog.sqlite3"

    def make_accounts(self) -> None:
        """An admin user (for the dashboard's session) and an admin token (for the API),
        made with the CLI; this also creates the catalog."""
        self._flask("users", "create-admin", "--username", "admin")
        printed = self._flask("tokens", "create", "--role", "admin", "--name", "bench")
        self.token = printed.strip().splitlines()[-1]

    def _flask(self, *args: str) -> str:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("flask")), "--app", "app", *args],
            cwd=ROOT, env=self.env(), capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def start_web(self) -> None:
        self.web = self._spawn("web", procfile_line("web"), self.env())
        client = WebClient(self.port)
        deadline = time.monotonic() + 60
        while not client.answers():
            if self.web.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: see {self.scratch / 'web.log'}")
            time.sleep(0.1)

    def start_worker(self, **overrides: str) -> None:
        """(Re)start the worker with these settings."""
        self.stop_worker()
        self.worker = self._spawn("worker", procfile_line("worker"), self.env(**overrides))

    def _spawn(self, name: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.scratch / f"{name}.log").open("ab") as log:
            return subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def worker_pid(self) -> int:
        if self.worker is None:
            raise RuntimeError("no worker is running")
        return self.worker.pid

    def check_alive(self) -> None:
        """Raise, with the end of its log, when the web or the worker has exited."""
        for name, process in (("web", self.web), ("worker", self.worker)):
            if process is not None and process.poll() is not None:
                log = (self.scratch / f"{name}.log").read_text(errors="replace")
                raise RuntimeError(f"the {name} exited ({process.returncode}):\n{log[-3000:]}")

    def stop_worker(self) -> None:
        _stop(self.worker)
        self.worker = None

    def stop(self) -> None:
        for process in (self.worker, self.web):
            _stop(process)
        self.worker = self.web = None
        with contextlib.suppress(Exception):
            self.redis.stop()
        self.postgres.stop()


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process's group (it was started in its own session), wait up to 15 s,
    then SIGKILL whatever is left of the group: the worker's horse, pg_dump and gunicorn's
    workers go with it."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)
