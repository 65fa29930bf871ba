"""Real services for the whole suite: a private PostgreSQL 15, a private Redis and a private
S3 endpoint (moto in server mode)."""

from __future__ import annotations

import gzip
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tools.localservices import PostgresServer, RedisServer, S3Server

# The fixtures below import tests/support in their bodies: tests/support/web.py imports this
# module (ADMIN_PASSWORD), and the engine's tests need neither Flask nor RQ.
if TYPE_CHECKING:
    from tests.support.notifications import HttpReceiver, Mailbox
    from tests.support.web import BackupsClient

ROOT = Path(__file__).resolve().parents[1]
# A full backup with change capture leaves a replication slot on the session's shared
# server, which keeps WAL and keeps its database from being dropped: off unless a test
# turns it on (app.config["CHANGE_CAPTURE"] = True; worker_env passes it on).
os.environ["CHANGE_CAPTURE"] = "false"
PAGILA_DIR = Path(os.environ.get("PAGILA_DIR", ROOT.parent / "shared" / "datasets" / "pagila"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer(settings={"fsync": "off", "synchronous_commit": "off"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 in a subprocess; clients get test credentials from ``s3_server.client()``
    and ``s3_server.storage_settings()``, never from the environment."""
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session's S3 server; returns its name."""
    name = f"test-{secrets.token_hex(8)}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def pagila_template(pg_server: PostgresServer) -> str:
    """A database loaded from ../shared/datasets/pagila, used only as a template."""
    schema = PAGILA_DIR / "pagila-schema.sql"
    data = PAGILA_DIR / "pagila-data.sql.gz"
    if not schema.exists() or not data.exists():
        pytest.fail(f"Pagila dataset not found in {PAGILA_DIR} (set PAGILA_DIR)", pytrace=False)
    pg_server.create_database("pagila_template")
    pg_server.psql("pagila_template", "-f", str(schema))
    pg_server.psql("pagila_template", stdin=gzip.decompress(data.read_bytes()))
    return "pagila_template"


@pytest.fixture
def pagila(pg_server: PostgresServer, pagila_template: str, request) -> Iterator[str]:
    """A fresh copy of Pagila for one test; yields its URL."""
    name = f"pagila_{abs(hash(request.node.nodeid)) % 10**8}"
    pg_server.drop_database(name)
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pagila_template}"')
    yield pg_server.url(name)
    pg_server.drop_database(name)


ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    """The app's BACKUP_DIR; a module may override it (the fault suite's tiny disk)."""
    return tmp_path / "backups"


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The app's Redis; a module may override it (a Redis of its own to stop and flush)."""
    return redis_server.url


@pytest.fixture
def empty_database(pg_server: PostgresServer, request) -> Iterator[str]:
    """A fresh empty database for one test; yields its URL."""
    name = f"empty_{abs(hash(request.node.nodeid)) % 10**8}"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture
def protected_url(request) -> str:
    """The database the app protects: a fresh Pagila copy, or an empty database for tests
    marked ``empty_target`` (accounts, auth, settings: nothing that reads the shop's data)."""
    if request.node.get_closest_marker("empty_target"):
        return request.getfixturevalue("empty_database")
    return request.getfixturevalue("pagila")


@pytest.fixture
def app(protected_url: str, redis_url: str, backup_dir: Path, tmp_path: Path):
    """The app protecting ``protected_url``, with its own catalog, Redis db and BACKUP_DIR."""
    import redis as redis_lib

    from app import create_app
    from services.extensions import db
    from services.models import User

    redis_lib.Redis.from_url(redis_url).flushdb()
    app = create_app({
        "DATABASE_URL": protected_url,
        "REDIS_URL": redis_url,
        "METADATA_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        "BACKUP_DIR": str(backup_dir),
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "TESTING": True,
        # scrypt costs 0.17 s per hash and per login; the rules under test are the same
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    })
    with app.app_context():
        admin = User(username="admin", role="admin")
        admin.set_password(ADMIN_PASSWORD)
        db.session.add(admin)
        db.session.commit()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def capture(app, pagila: str, pg_server: PostgresServer) -> Iterator[str]:
    """Change capture on for the app (the suite turns it off), and the chains' slots on
    the protected database dropped afterwards; yields the protected database's URL."""
    from tests.support.capture import drop_app_slots

    app.config["CHANGE_CAPTURE"] = True
    yield pagila
    drop_app_slots(pg_server, pagila)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api_token(app) -> str:
    """A valid admin bearer token."""
    from services.extensions import db
    from services.models import ApiToken

    with app.app_context():
        row, token = ApiToken.mint("tests", "admin")
        db.session.add(row)
        db.session.commit()
    return token


@pytest.fixture
def api(client, api_token):
    """The test client with the bearer token on every request."""
    from tests.support.web import BearerClient

    return BearerClient(client, api_token)


@pytest.fixture
def run_worker(app):
    """Run queued jobs now in a real RQ SimpleWorker (burst mode) inside this process."""
    from jobs.queues import QUEUES, redis_connection
    from jobs.worker import BackupSimpleWorker

    def run() -> None:
        with app.app_context():
            connection = redis_connection()
            BackupSimpleWorker(list(QUEUES), connection=connection).work(burst=True)

    return run


@pytest.fixture
def htmx(client) -> BackupsClient:
    from tests.support.web import BackupsClient

    return BackupsClient(client)


@pytest.fixture
def env(app, tmp_path) -> dict[str, str]:
    """The environment of the app's worker and scheduler processes."""
    from tests.support.workers import worker_env

    bindir = tmp_path / "bin"
    bindir.mkdir()
    return worker_env(app, bindir)


@pytest.fixture
def worker(app, env) -> Iterator[subprocess.Popen]:
    """A real `rq worker` process on every queue."""
    from tests.support.workers import start_worker

    yield from _until_torn_down(app, lambda: start_worker(env), "workers")


@pytest.fixture
def scheduler(app, env) -> Iterator[subprocess.Popen]:
    """A real `flask scheduler` process."""
    from tests.support.workers import start_scheduler

    yield from _until_torn_down(app, lambda: start_scheduler(env), "scheduler")


def _until_torn_down(app, start: Callable[[], subprocess.Popen],
                     check: str) -> Iterator[subprocess.Popen]:
    """Start a process, wait until the health check ``check`` sees it, yield it, kill it."""
    from tests.support.health import status
    from tests.support.workers import kill_tree, wait_for

    process = start()
    try:
        wait_for(lambda: status(app, check) == "ok")
        yield process
    finally:
        kill_tree(process.pid)
        process.wait()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    from tests.support.notifications import http_receiver

    with http_receiver() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from tests.support.notifications import smtp_receiver

    with smtp_receiver() as server:
        yield server
