"""Private PostgreSQL, Redis and S3 (moto) servers for the test suite and the demo.

Tests get throwaway servers in temporary directories; the demo keeps its servers' data
under .demo/ between runs. PostgreSQL refuses to run as root, so when started by root
the server runs as the ``postgres`` system user. A missing binary is a hard error with a
clear message, never a skip.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
            start_new_session=True,  # a Ctrl-C for the app is not for Redis: see stop()
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


class S3Server:
    """A private S3 endpoint: moto in server mode (``python -m moto.server``), a subprocess
    on a free loopback port, so a test can stop it mid-upload. State is in memory only (a
    restart starts empty); moto accepts any credentials unless ``env`` turns its IAM checks on
    (``INITIAL_NO_AUTH_ACTION_COUNT``)."""

    ACCESS_KEY_ID = "testing-access-key-id"
    SECRET_ACCESS_KEY = "testing-secret-access-key"
    REGION = "us-east-1"

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None) -> None:
        for module, package in (("moto", "moto[server]"), ("flask_cors", "moto[server]")):
            if importlib.util.find_spec(module) is None:
                raise MissingTool(
                    f"{module} not found: install {package} (it is in the dev extras, "
                    "requirements.lock)"
                )
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.base = Path(tempfile.mkdtemp(prefix="s3test-"))
        self.log_path = self.base / "moto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        self.base.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
            )
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"moto S3 server did not start on port {self.port}:\n{self._log_tail()}"
                )
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        """True once the server answers HTTP (moto's own API: not counted as an S3 action)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/moto-api/")
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
        return True

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)

    def storage_settings(self) -> dict[str, Any]:
        """Keyword arguments of pgbackup's S3Storage for this server (test credentials)."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.REGION,
            "access_key_id": self.ACCESS_KEY_ID,
            "secret_access_key": self.SECRET_ACCESS_KEY,
            "force_path_style": True,
        }

    def client(self, service: str = "s3") -> Any:
        """A boto3 client for this server with the test credentials (never the process's
        environment)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            service, endpoint_url=self.endpoint_url, region_name=self.REGION,
            aws_access_key_id=self.ACCESS_KEY_ID, aws_secret_access_key=self.SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )
