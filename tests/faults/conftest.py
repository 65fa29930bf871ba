"""Fixtures of the fault suite.

The suite uses the session's private PostgreSQL (``pg_server``) and a fresh Pagila copy
per test (``pagila``) from tests/conftest.py. ``app`` is redefined here so that a module
can move two things: ``backup_dir`` (test_disk_full.py puts it on a tiny tmpfs) and
``redis_url`` (test_redis.py gives it a Redis of its own to stop and flush, leaving the
session's Redis alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.faults.helpers import Fault, protected_state


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def app(pagila: str, redis_url: str, backup_dir: Path, tmp_path: Path):
    """The app protecting a fresh Pagila copy, with its own catalog and BACKUP_DIR."""
    import redis as redis_lib

    from app import create_app
    from extensions import db
    from models import User

    redis_lib.Redis.from_url(redis_url).flushdb()
    app = create_app({
        "DATABASE_URL": pagila,
        "REDIS_URL": redis_url,
        "METADATA_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        "BACKUP_DIR": str(backup_dir),
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "TESTING": True,
    })
    with app.app_context():
        admin = User(username="admin", role="admin")
        admin.set_password(ADMIN_PASSWORD)
        db.session.add(admin)
        db.session.commit()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def pristine_state(pg_server, pagila_template: str) -> tuple[str, dict]:
    """Schema dump and table fingerprints of Pagila: every test's protected database is a
    fresh copy of the template, so this is its state until the test changes it."""
    return protected_state(pg_server.url(pagila_template))


@pytest.fixture
def fault(app, pg_server, api, run_worker, pristine_state, tmp_path: Path,
          monkeypatch) -> Iterator[Fault]:
    """The test's context: gated tool wrappers, tagged workers, the invariants' baseline.
    Teardown kills whatever the test started and drops databases it left."""
    monkeypatch.setenv("WORKER_LOG", str(tmp_path / "worker.log"))
    context = Fault(app=app, pg_server=pg_server, api=api, run_worker=run_worker,
                    tmp_path=tmp_path, untouched=pristine_state)
    yield context
    context.cleanup()
