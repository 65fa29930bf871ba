"""Database administration through the maintenance connection, on a real PostgreSQL 15."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import datetime

import psycopg
import pytest
from psycopg import sql

from pgbackup import ConnectionInfo
from pgbackup.dbadmin import (
    create_database,
    database_exists,
    drop_database,
    open_connections,
    swap_databases,
    terminate_connections,
    validate_database_name,
)
from tools.localservices import PostgresServer

SETTINGS_SQL = """
SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype
FROM pg_database WHERE datname = %s
"""


@pytest.fixture
def names(pg_server: PostgresServer) -> Iterator[Callable[[str], str]]:
    """Factory for unused database names (``prefix`` + random); all dropped afterwards."""
    made: list[str] = []

    def make(prefix: str = "admin_") -> str:
        made.append(f"{prefix}{secrets.token_hex(4)}")
        return made[-1]

    yield make
    for name in made:
        pg_server.drop_database(name)


def settings_of(pg_server: PostgresServer, name: str) -> tuple[str, str, str, str]:
    with pg_server.connect() as conn:
        return conn.execute(SETTINGS_SQL, [name]).fetchone()


@pytest.mark.parametrize("name", [
    "a", "pagila", "_x", "Shop_2024", "rental-shop", "a$b", "x" * 63,
])
def test_valid_database_names(name: str) -> None:
    assert validate_database_name(name) == name


@pytest.mark.parametrize(("name", "reason"), [
    ("", "non-empty"),
    (None, "non-empty"),
    ("a\x00b", "NUL"),
    (" pagila", "whitespace"),
    ("pagila ", "whitespace"),
    ('pa"gila', "quote"),
    ("pa'gila", "quote"),
    ("a/b", "slash"),
    ("a\\b", "slash"),
    ("x" * 64, "longer than 63 bytes"),
    ("1st", "must start with"),
    ("-x", "must start with"),
    ("$x", "must start with"),
    ("two words", "contain only"),
    ("a;drop", "contain only"),
    ("café", "contain only"),
])
def test_invalid_database_names(name: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_database_name(name)


def test_create_exists_and_drop(
    server: ConnectionInfo, names: Callable[[str], str], pg_server: PostgresServer,
) -> None:
    name = names("Mixed-Case_")
    assert not database_exists(server, name)
    create_database(server, name)
    assert database_exists(server, name)
    with pytest.raises(psycopg.errors.DuplicateDatabase):
        create_database(server, name)
    held = psycopg.connect(pg_server.url(name))
    drop_database(server, name)  # a session on it does not stop the drop
    assert not database_exists(server, name)
    held.close()
    drop_database(server, name)  # already gone: nothing to do
    with pytest.raises(ValueError, match="invalid database name"):
        drop_database(server, 'x"; DROP DATABASE postgres; --')


def test_create_like_copies_owner_encoding_and_locale(
    server: ConnectionInfo, names: Callable[[str], str], pg_server: PostgresServer,
) -> None:
    role, source, copy, plain = names("role_"), names(), names(), names()
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'LATIN1' "
            "LC_COLLATE 'C' LC_CTYPE 'C'"
        ).format(sql.Identifier(source), sql.Identifier(role)))
    try:
        create_database(server, copy, like=source)
        create_database(server, plain)
        assert settings_of(pg_server, copy) == settings_of(pg_server, source) == (
            role, "LATIN1", "C", "C")
        assert settings_of(pg_server, plain) == ("postgres", "UTF8", "C.UTF-8", "C.UTF-8")
        with pytest.raises(psycopg.errors.InvalidCatalogName, match="no_such_db"):
            create_database(server, names(), like="no_such_db")
    finally:
        for name in (copy, source):
            pg_server.drop_database(name)
        with pg_server.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_open_and_terminate_connections(
    server: ConnectionInfo, names: Callable[[str], str], pg_server: PostgresServer,
) -> None:
    name = names()
    create_database(server, name)
    assert open_connections(server, name) == []
    held = [psycopg.connect(pg_server.url(name), application_name=f"held-{i}") for i in range(2)]
    try:
        sessions = open_connections(server, name)
        assert sorted(s["application"] for s in sessions) == ["held-0", "held-1"]
        assert {s["pid"] for s in sessions} == {conn.info.backend_pid for conn in held}
        first = sessions[0]
        assert set(first) == {
            "pid", "user", "application", "client_address", "state", "backend_start"}
        assert (first["user"], first["client_address"], first["state"]) == (
            "postgres", "127.0.0.1", "idle")
        assert isinstance(first["backend_start"], datetime)
        assert open_connections(server, "postgres") == []  # our own session is left out

        assert terminate_connections(server, name) == 2
        assert open_connections(server, name) == []
        for conn in held:
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        assert terminate_connections(server, name) == 0
    finally:
        for conn in held:
            conn.close()


def allows_connections(pg_server: PostgresServer, name: str) -> bool | None:
    with pg_server.connect() as conn:
        row = conn.execute(
            "SELECT datallowconn FROM pg_database WHERE datname = %s", [name]).fetchone()
    return row[0] if row else None


def marker(pg_server: PostgresServer, name: str) -> str:
    with pg_server.connect(name) as conn:
        return conn.execute("SELECT current_setting('pgbackup.marker', true)").fetchone()[0]


def create_marked(pg_server: PostgresServer, name: str, value: str) -> None:
    pg_server.create_database(name)
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET pgbackup.marker = {}").format(
            sql.Identifier(name), sql.Literal(value)))


def test_swap_keeps_the_old_database_under_a_new_name(
    server: ConnectionInfo, names: Callable[[str], str], pg_server: PostgresServer,
) -> None:
    live, replacement = names("x" * 55), names()  # 63 bytes: the retired name is shortened
    create_marked(pg_server, live, "old")
    create_marked(pg_server, replacement, "new")
    held = psycopg.connect(pg_server.url(live))

    retired = swap_databases(server, live, replacement)
    try:
        assert retired.startswith(f"{live[:39]}_replaced_") and len(retired) <= 63
        assert marker(pg_server, live) == "new"
        assert marker(pg_server, retired) == "old"
        assert not database_exists(server, replacement)
        assert allows_connections(pg_server, retired) is True
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    finally:
        held.close()
        pg_server.drop_database(retired)


def test_failed_swap_leaves_the_live_database_in_place(
    server: ConnectionInfo, names: Callable[[str], str], pg_server: PostgresServer,
) -> None:
    live = names()
    create_marked(pg_server, live, "old")

    with pytest.raises(psycopg.errors.InvalidCatalogName):
        swap_databases(server, live, names())  # no such replacement: live is not touched
    # The second rename fails after the first succeeded (the maintenance database cannot
    # be renamed from a session on it): the transaction undoes the first.
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="cannot be renamed"):
        swap_databases(server, live, "postgres")
    assert marker(pg_server, live) == "old"
    assert allows_connections(pg_server, live) is True
    with pg_server.connect() as conn:
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s", [f"{live}_replaced_%"]
        ).fetchone()[0]
    assert leftovers == 0
    with pytest.raises(ValueError, match="with itself"):
        swap_databases(server, live, live)
