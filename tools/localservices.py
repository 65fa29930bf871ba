"""Private PostgreSQL and Redis servers for the test suite and the one-command demo.

Tests get throwaway servers in temporary directories; the demo keeps its servers' data
under .demo/ between runs. PostgreSQL refuses to run as root, so when started by root
the server runs as the ``postgres`` system user. A missing binary is a hard error with a
clear message, never a skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis


class MissingTool(RuntimeError):
    """A binary the tests need is not installed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
        if (bindir / "initdb").exists():
            return bindir
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise MissingTool(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql "
        "package (scripts/test does this as root)"
    )


def _run_as_user() -> list[str]:
    """Prefix that drops root to the postgres user; empty when not root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise MissingTool("running as root needs a 'postgres' system user") from exc
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


class PostgresServer:
    """A private PostgreSQL cluster: trust auth on 127.0.0.1, superuser ``postgres``."""

    def __init__(
        self, base: Path | None = None, port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bindir = _pg_bindir()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.settings = {"wal_level": "logical", "max_connections": "100"}
        self.settings.update(settings or {})
        self.keep = base is not None
        self.base = base or Path(tempfile.mkdtemp(prefix="pgtest-"))
        self.base.mkdir(parents=True, exist_ok=True)
        self.datadir = self.base / "data"
        self.prefix = _run_as_user()
        if self.prefix:
            shutil.chown(self.base, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.prefix, *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        if not (self.datadir / "PG_VERSION").exists():
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", self.user,
                "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
            )
        options = " ".join(f"-c {key}={value}" for key, value in self.settings.items())
        options += f" -c listen_addresses={self.host} -c unix_socket_directories={self.base}"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60",
            "-l", str(self.base / "server.log"), "-o", f"-p {self.port} {options}", "start",
        )
        return self

    def stop(self) -> None:
        if self.datadir.exists():
            subprocess.run(
                [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                 "-m", "fast" if self.keep else "immediate", "stop"],
                capture_output=True,
            )
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        auth = f"{self.user}:{password}" if password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, dbname: str, *args: str, stdin: bytes | None = None) -> None:
        """Run psql with ON_ERROR_STOP against one database."""
        psql = shutil.which("psql") or str(self.bindir / "psql")
        subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url(dbname), *args],
            input=stdin, check=True, capture_output=True,
        )


class RedisServer:
    """A private redis-server with persistence off."""

    def __init__(self, base: Path | None = None, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise MissingTool("redis-server not found: install the redis-server package")
        self.binary = binary
        self.port = port or free_port()
        self.keep = base is not None
        self.base = base or Path(tempfile.mkdtemp(prefix="redistest-"))
        self.base.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start on port {self.port}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
