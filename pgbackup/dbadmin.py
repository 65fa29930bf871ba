"""Creating, dropping, emptying and swapping databases, through a maintenance connection.

A database cannot be created, dropped or renamed from a session connected to it, so every
function here connects to the maintenance database ``postgres`` of the same server, in
autocommit mode (CREATE and DROP DATABASE refuse to run inside a transaction block).
Database names are validated, then always quoted with ``psycopg.sql.Identifier``; values
travel as query parameters. What the server refuses (permissions, a name in use, a missing
database) is raised as the matching ``psycopg.Error``.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgbackup.connection import ConnectionInfo

MAINTENANCE_DATABASE = "postgres"
MAX_NAME_BYTES = 63  # NAMEDATALEN - 1: longer identifiers are silently truncated
DISCONNECT_TIMEOUT = 10.0
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]*$")
_POLL_INTERVAL = 0.05

_SETTINGS_SQL = """
SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype
FROM pg_database WHERE datname = %s
"""
_SESSIONS_SQL = """
SELECT pid, usename AS "user", application_name AS application,
       host(client_addr) AS client_address, state, backend_start
FROM pg_stat_activity
WHERE datname = %s AND pid <> pg_backend_pid()
ORDER BY backend_start, pid
"""
# pg_terminate_backend in the select list runs only for the rows the WHERE clause kept.
_TERMINATE_SQL = """
SELECT pid FROM (
  SELECT pid, pg_terminate_backend(pid) AS terminated
  FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()
) AS sessions
WHERE terminated
"""


def validate_database_name(name: str) -> str:
    """Return ``name`` if it is a database name this engine will create or replace.

    Stricter than PostgreSQL on purpose: 1 to 63 bytes of ASCII letters, digits, ``_``,
    ``$`` and ``-``, not starting with a digit, ``$`` or ``-``. No quotes, slashes, spaces
    or NUL, so the name is safe in URLs, file names and log lines too.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("database name must be a non-empty string")
    problems = [
        ("\x00" in name, "contains a NUL byte"),
        (name != name.strip(), "has leading or trailing whitespace"),
        (any(quote in name for quote in "'\"`"), "contains a quote"),
        ("/" in name or "\\" in name, "contains a slash"),
        (len(name.encode()) > MAX_NAME_BYTES, f"is longer than {MAX_NAME_BYTES} bytes"),
        (not _NAME_RE.fullmatch(name), "must start with an ASCII letter or '_' and contain "
                                       "only ASCII letters, digits, '_', '$' and '-'"),
    ]
    for failed, reason in problems:
        if failed:
            raise ValueError(f"invalid database name {name!r}: {reason}")
    return name


def maintenance_connection(conn: ConnectionInfo, **kwargs: Any) -> psycopg.Connection:
    """An autocommit connection to the maintenance database of ``conn``'s server."""
    return psycopg.connect(
        conn.for_database(MAINTENANCE_DATABASE).conninfo, autocommit=True, **kwargs
    )


def database_exists(conn: ConnectionInfo, name: str) -> bool:
    with maintenance_connection(conn) as pg:
        return _exists(pg, name)


def create_database(conn: ConnectionInfo, name: str, like: str | None = None) -> None:
    """CREATE DATABASE ``name`` from ``template0``: empty, whatever template1 holds.

    With ``like``, the new database gets that database's owner, encoding, LC_COLLATE and
    LC_CTYPE (database-level GRANTs and ``ALTER DATABASE ... SET`` are not copied).
    """
    query = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
        sql.Identifier(validate_database_name(name))
    )
    with maintenance_connection(conn) as pg:
        if like is not None:
            query += _settings_of(pg, like)
        pg.execute(query)


def drop_database(conn: ConnectionInfo, name: str) -> None:
    """DROP DATABASE IF EXISTS, terminating its sessions (WITH (FORCE), PostgreSQL 13+)."""
    with maintenance_connection(conn) as pg:
        pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(validate_database_name(name))
        ))


def rename_database(conn: ConnectionInfo, name: str, new_name: str) -> None:
    """ALTER DATABASE ``name`` RENAME TO ``new_name``; refused if ``new_name`` exists."""
    with maintenance_connection(conn) as pg:
        _rename(pg, validate_database_name(name), validate_database_name(new_name))


def set_database_comment(conn: ConnectionInfo, name: str, comment: str) -> None:
    """COMMENT ON DATABASE: a mark that survives a rename, to recognise the database later."""
    with maintenance_connection(conn) as pg:
        pg.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(validate_database_name(name)), sql.Literal(comment)))


def database_comment(conn: ConnectionInfo, name: str) -> str | None:
    """The comment on database ``name``; None if it has none or does not exist."""
    with maintenance_connection(conn) as pg:
        row = pg.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name]).fetchone()
    return row[0] if row else None


def working_name(target: str, purpose: str = "restore") -> str:
    """``<target>_<purpose>_<8 hex>``: a fresh name, within 63 bytes, that nobody else uses."""
    suffix = f"_{purpose}_{secrets.token_hex(4)}"
    return target[: MAX_NAME_BYTES - len(suffix)] + suffix


def open_connections(conn: ConnectionInfo, dbname: str) -> list[dict[str, Any]]:
    """The sessions on ``dbname`` (ours excluded): pid, user, application, client_address,
    state, backend_start. Other roles' details read None unless we may see them."""
    with maintenance_connection(conn) as pg, pg.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(_SESSIONS_SQL, [dbname]).fetchall()


def terminate_connections(
    conn: ConnectionInfo, dbname: str, timeout: float = DISCONNECT_TIMEOUT
) -> int:
    """Terminate every session on ``dbname`` and wait until they are gone; returns how
    many were terminated. TimeoutError if they are still there after ``timeout`` seconds."""
    with maintenance_connection(conn) as pg:
        return _terminate(pg, dbname, timeout)


def swap_databases(conn: ConnectionInfo, live: str, replacement: str,
                   retired: str | None = None) -> str:
    """Make ``replacement`` the database called ``live``; return the old database's new name
    (``retired``, or one made from ``live`` and the time; a caller that must find the old
    database again after a crash names it beforehand with :func:`retired_name`).

    Why a swap: a restore goes into a new database, and the live one is replaced only once
    that copy is complete and verified. A failed or interrupted restore therefore never
    leaves a half-restored live database, and the old data stays at hand under the returned
    name (``<live>_replaced_<UTC time>``) until the caller drops it.

    How: new connections to ``live`` are refused (ALLOW_CONNECTIONS false), the sessions on
    both databases are terminated, then both renames run in ONE transaction: if the second
    fails, PostgreSQL undoes the first, so ``live`` never goes missing. The old database
    gets its ALLOW_CONNECTIONS setting back under whichever name it ends up with (should
    this process die in between, ``ALTER DATABASE ... ALLOW_CONNECTIONS true`` by hand).
    Needs ownership of both databases and CREATEDB, or superuser.
    """
    if validate_database_name(live) == validate_database_name(replacement):
        raise ValueError(f"cannot swap database {live!r} with itself")
    retired = validate_database_name(retired or retired_name(live))
    with maintenance_connection(conn) as pg:
        allowed = _allows_connections(pg, live)
        if not _exists(pg, replacement):  # found out before live is disturbed
            raise _missing(replacement)
        _terminate(pg, replacement, DISCONNECT_TIMEOUT)
        _set_allow_connections(pg, live, False)
        try:
            _terminate(pg, live, DISCONNECT_TIMEOUT)
            with pg.transaction():
                _rename(pg, live, retired)
                _rename(pg, replacement, live)
        except BaseException:
            _set_allow_connections(pg, live, allowed)
            raise
        _set_allow_connections(pg, retired, allowed)
    return retired


def _exists(pg: psycopg.Connection, name: str) -> bool:
    return pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _settings_of(pg: psycopg.Connection, name: str) -> sql.Composed:
    """The OWNER, ENCODING, LC_COLLATE and LC_CTYPE clauses copying database ``name``."""
    row = pg.execute(_SETTINGS_SQL, [name]).fetchone()
    if row is None:
        raise _missing(name)
    owner, encoding, collate, ctype = row
    return sql.SQL(" OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
        sql.Identifier(owner), sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)
    )


def _allows_connections(pg: psycopg.Connection, name: str) -> bool:
    row = pg.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", [name]).fetchone()
    if row is None:
        raise _missing(name)
    return bool(row[0])


def _missing(name: str) -> psycopg.errors.InvalidCatalogName:
    """The error the server itself gives for a database that does not exist."""
    return psycopg.errors.InvalidCatalogName(f'database "{name}" does not exist')


def _set_allow_connections(pg: psycopg.Connection, name: str, allowed: bool) -> None:
    pg.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
        sql.Identifier(name), sql.Literal(allowed)
    ))


def _rename(pg: psycopg.Connection, name: str, new_name: str) -> None:
    pg.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
        sql.Identifier(name), sql.Identifier(new_name)
    ))


def _terminate(pg: psycopg.Connection, dbname: str, timeout: float) -> int:
    pids = [pid for (pid,) in pg.execute(_TERMINATE_SQL, [dbname])]
    deadline = time.monotonic() + timeout
    while _still_alive(pg, pids):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"sessions on database {dbname!r} did not end within {timeout:g} s"
            )
        time.sleep(_POLL_INTERVAL)
    return len(pids)


def _still_alive(pg: psycopg.Connection, pids: list[int]) -> bool:
    if not pids:
        return False
    query = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s))"
    row = pg.execute(query, [pids]).fetchone()
    assert row is not None  # SELECT EXISTS always returns one row
    return bool(row[0])


def retired_name(live: str) -> str:
    """``<live>_replaced_<UTC time>``, with ``live`` shortened to keep it within 63 bytes."""
    suffix = f"_replaced_{datetime.now(UTC):%Y%m%d%H%M%S}"
    return live[: MAX_NAME_BYTES - len(suffix)] + suffix
