"""Fixtures for the backup engine tests: storage, buckets, scratch databases, pg_dump
wrappers."""

from __future__ import annotations

import secrets
import shlex
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from pgbackup import ConnectionInfo, LocalStorage
from tests.engine.helpers import drop_slots, require_tool
from tools.localservices import PostgresServer


@pytest.fixture
def server(pg_server: PostgresServer) -> ConnectionInfo:
    """The test server, as the engine's restore and admin functions take it."""
    return ConnectionInfo.from_url(pg_server.url())


@pytest.fixture
def new_name(pg_server: PostgresServer) -> Iterator[str]:
    """A database name nobody uses yet; whatever gets that name is dropped afterwards."""
    name = f"restored_{secrets.token_hex(4)}"
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "backups")


@pytest.fixture
def scratch_db(pg_server: PostgresServer) -> Iterator[Callable[[], str]]:
    """Factory for empty databases (dropped afterwards); returns the new database's URL."""
    names: list[str] = []

    def create() -> str:
        names.append(f"scratch_{secrets.token_hex(4)}")
        return pg_server.create_database(names[-1])

    yield create
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture
def fake_pg_dump(tmp_path: Path) -> Callable[[str], str]:
    """Factory for pg_dump wrapper scripts: ``body`` runs before the real pg_dump is exec'd
    (``$REAL`` names it); ``--version`` goes straight to the real binary."""
    real = require_tool("pg_dump")

    def make(body: str) -> str:
        script = tmp_path / f"pg_dump_wrapper_{secrets.token_hex(3)}"
        script.write_text(
            "#!/bin/bash\n"
            f"REAL={shlex.quote(real)}\n"
            'if [ "$1" = "--version" ]; then exec "$REAL" "$@"; fi\n'
            f"{body}\n"
            'exec "$REAL" "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        return str(script)

    return make


PASSWORD_ROLE = "engine_backup_role"


@pytest.fixture
def password_url(pg_server: PostgresServer, pagila: str) -> Iterator[tuple[str, str]]:
    """(URL, password) of a least-privilege role that must log in with a scram password.

    The password holds ':' and '\\' (passfile escapes) and URL-special characters.
    """
    password = f"s3cr:et\\pa ss@/#%{secrets.token_hex(4)}"
    hba = pg_server.datadir / "pg_hba.conf"
    original = hba.read_text()
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_read_all_data").format(
            sql.Identifier(PASSWORD_ROLE), sql.Literal(password)))
    hba.write_text(f"host all {PASSWORD_ROLE} {pg_server.host}/32 scram-sha-256\n{original}")
    server = f"{pg_server.host}:{pg_server.port}/{pagila.rsplit('/', 1)[1]}"
    try:
        _reload_config(pg_server)
        _wait_until_password_required(f"postgresql://{PASSWORD_ROLE}@{server}")
        yield f"postgresql://{PASSWORD_ROLE}:{quote(password, safe='')}@{server}", password
    finally:
        hba.write_text(original)
        _reload_config(pg_server)
        with pg_server.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(PASSWORD_ROLE)))


def _reload_config(pg_server: PostgresServer) -> None:
    with pg_server.connect() as conn:
        conn.execute("SELECT pg_reload_conf()")


def _wait_until_password_required(url_without_password: str) -> None:
    """pg_reload_conf() only signals the postmaster: wait for the new hba rule to apply."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            psycopg.connect(url_without_password, connect_timeout=5).close()
        except psycopg.OperationalError:
            return
        time.sleep(0.05)
    pytest.fail("the scram-sha-256 pg_hba.conf rule did not take effect")


@pytest.fixture
def slot_prefix(pg_server: PostgresServer) -> Iterator[str]:
    """A name prefix for this test's replication slots; every slot with it is dropped
    afterwards (they live on the session's shared server, where a leftover one keeps WAL
    and keeps its database from being dropped)."""
    prefix = f"pgbackup_t{secrets.token_hex(4)}"
    yield prefix
    drop_slots(pg_server, prefix)
