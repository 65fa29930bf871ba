"""The catalog's schema: revisions that build the models, upgrades that keep every row."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from services import catalog_upgrade, models
from services.extensions import db

ROOT = Path(__file__).resolve().parents[2]
SECRET = "k" * 40
HEAD = "0012_list_indexes_and_version"
# A catalog of release 0.1.0, as its create_all made it: no alembic_version.
RELEASE_ROWS = [
    "INSERT INTO users (id, username, password_hash, role, created_at, failed_logins, "
    "session_version) VALUES (1, 'admin', 'scrypt:hash', 'admin', '2026-11-01 10:00:00', 0, 1)",
    "INSERT INTO activity (at, actor, action, outcome) "
    "VALUES ('2026-11-01 10:00:00', 'admin', 'login', 'ok')",
    "INSERT INTO backups (id, target, database, type, status, compress, filename, size, sha256, "
    "origin, verification, created_at, finished_at) VALUES ('backup-2026-11-01T10-00-00-000Z', "
    "'default', 'shop', 'full', 'completed', true, 'backup-2026-11-01T10-00-00-000Z.dump.zst', "
    "1234, 'ab', 'manual', 'valid', '2026-11-01 10:00:00', '2026-11-01 10:00:05')",
]


def build(url: str, revision: str, *, versioned: bool = True) -> None:
    """A catalog made by the revisions up to ``revision``, with release 0.1.0's rows."""
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(catalog_upgrade._config(connection), revision)
        for statement in RELEASE_ROWS:
            connection.exec_driver_sql(statement)
        if not versioned:
            connection.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()


def start(url: str, pg_url: str):
    from app import create_app

    return create_app({"DATABASE_URL": pg_url, "METADATA_DATABASE_URL": url,
                       "SECRET_KEY": SECRET, "TESTING": True})


def schema_differences(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), db.metadata)
    engine.dispose()
    return differences


def test_the_revisions_build_exactly_the_models(tmp_path, pg_server):
    sqlite_url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    pg_url = pg_server.create_database("schema_from_revisions")
    for url in (sqlite_url, pg_url):
        engine = create_engine(url)
        with engine.begin() as connection:
            command.upgrade(catalog_upgrade._config(connection), "head")
        engine.dispose()
        assert schema_differences(url) == [], url


def test_a_new_catalog_is_created_at_the_newest_revision(tmp_path, pg_server):
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    start(url, pg_server.url("postgres"))
    with sqlite3.connect(tmp_path / "new.sqlite3") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    assert schema_differences(url) == []
    assert not list(tmp_path.glob("new.sqlite3.before-*"))


@pytest.mark.parametrize("versioned", [False, True], ids=["release-0.1.0", "revision-0001"])
def test_an_older_sqlite_catalog_is_copied_then_upgraded_keeping_its_rows(
        tmp_path, pg_server, versioned):
    path = tmp_path / "catalog.sqlite3"
    url = f"sqlite:///{path}"
    build(url, "0001_baseline", versioned=versioned)
    app = start(url, pg_server.url("postgres"))
    with app.app_context():
        admin = db.session.get(models.User, 1)
        assert (admin.username, admin.role, admin.has_totp) == ("admin", "admin", False)
        assert [event.action for event in db.session.scalars(db.select(models.ActivityEvent))
                ] == ["login"]
    assert schema_differences(url) == []
    [copy] = tmp_path.glob("catalog.sqlite3.before-*")
    assert copy.name.endswith("before-0.1.0" if not versioned else "before-0001_baseline")
    assert copy.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(copy) as conn:  # the copy is the catalog as it was
        assert conn.execute("SELECT username FROM users").fetchall() == [("admin",)]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
        assert "totp_secret" not in columns


def test_a_postgresql_catalog_of_release_010_is_upgraded(pg_server):
    url = pg_server.create_database("release_catalog").replace("postgresql://",
                                                               "postgresql+psycopg://")
    build(url, "0001_baseline", versioned=False)
    app = start(url, pg_server.url("postgres"))
    with app.app_context():
        assert db.session.get(models.User, 1).username == "admin"
        [copy] = db.session.get(models.Backup, "backup-2026-11-01T10-00-00-000Z").copies
        assert (copy.destination, copy.status, copy.size, copy.sha256) == (
            "local", "stored", 1234, "ab")
        db.engine.dispose()
    assert schema_differences(url) == []
    with psycopg.connect(pg_server.url("release_catalog")) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


def test_processes_starting_together_upgrade_once(tmp_path, pg_server):
    path = tmp_path / "catalog.sqlite3"
    build(f"sqlite:///{path}", "0001_baseline", versioned=False)
    env = {**os.environ, "DATABASE_URL": pg_server.url("postgres"), "SECRET_KEY": SECRET,
           "METADATA_DATABASE_URL": f"sqlite:///{path}"}
    starts = [subprocess.Popen([sys.executable, "-c", "from app import create_app; create_app()"],
                               cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
              for _ in range(4)]
    logs = [process.communicate(timeout=120)[1] for process in starts]
    assert [process.returncode for process in starts] == [0, 0, 0, 0], logs
    assert sum(f"catalog upgraded from 0001_baseline to {HEAD}" in log for log in logs) == 1
    assert len(list(tmp_path.glob("catalog.sqlite3.before-*"))) == 1


def test_a_catalog_older_than_the_first_release_is_refused(tmp_path, pg_server):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE api_tokens (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(SystemExit, match=r"lacks activity, alerts, api_tokens\.created_at, "
                                         r"api_tokens\.expires_at, .*older than release 0\.1"):
        start(f"sqlite:///{path}", pg_server.url("postgres"))
    with sqlite3.connect(path) as conn:  # untouched
        assert [row[0] for row in conn.execute("SELECT name FROM sqlite_master")] == [
            "api_tokens"]


def test_a_catalog_from_a_newer_version_is_refused(tmp_path, pg_server):
    path = tmp_path / "newer.sqlite3"
    build(f"sqlite:///{path}", "head")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_future'")
    with pytest.raises(SystemExit, match="revision 0099_future, which this version does not "
                                         "know: a newer version made it"):
        start(f"sqlite:///{path}", pg_server.url("postgres"))
