"""Whether change capture (logical decoding) can run on a server for a role, and if not,
each reason in one sentence with its exact fix.

Only reads, except one short-lived temporary slot that proves the output plugin loads;
it is made only once nothing else stands in the way.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import make_conninfo

from pgbackup.connection import ConnectionInfo
from pgbackup.errors import BackupError
from pgbackup.slots import PLUGIN, error_reason

_FACTS_SQL = """
SELECT current_setting('wal_level'), r.rolsuper, r.rolreplication, quote_ident(current_user),
       current_setting('max_replication_slots')::int,
       (SELECT count(*) FROM pg_replication_slots)::int,
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_stat_get_wal_senders())::int,
       host(inet_client_addr()) || '/' || masklen(inet_client_addr())
FROM pg_roles r WHERE r.rolname = current_user
"""
# Loading the plugin comes before waiting for running transactions: a timeout proves it loads.
_PROBE_TIMEOUT = "SET statement_timeout = '5s'"
_PROBE_SQL = "SELECT pg_create_logical_replication_slot(%s, %s, true)"
_PLAIN_NAME_RE = re.compile(r"[a-z_][a-z0-9_$]*")


@dataclass(frozen=True)
class Problem:
    code: str
    sentence: str
    fix: str


@dataclass(frozen=True)
class Readiness:
    ok: bool
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Facts:
    wal_level: str
    superuser: bool
    replication: bool
    role: str  # quoted like an SQL identifier when it needs to be
    max_slots: int
    slots_used: int
    max_senders: int
    senders_used: int
    client_address: str | None  # 192.0.2.7/32; None over a Unix socket

    @property
    def privileged(self) -> bool:
        return self.superuser or self.replication


def capture_readiness(conn: ConnectionInfo) -> Readiness:
    """Check the server's settings, the role's privileges, a replication connection and the
    output plugin; raises BackupError only when the server cannot be reached at all."""
    facts = _facts(conn)
    problems = [
        problem
        for problem in (_wal_level(facts), _privilege(facts), _slots(facts), _senders(facts))
        if problem
    ]
    if facts.privileged and facts.senders_used < facts.max_senders:
        connection = replication_connection_problem(conn, facts.role, facts.client_address)
        problems += [connection] if connection else []
    if not problems:
        plugin = plugin_problem(conn)
        problems += [plugin] if plugin else []
    return Readiness(not problems, problems)


def _facts(conn: ConnectionInfo) -> _Facts:
    try:
        with psycopg.connect(conn.conninfo, autocommit=True) as pg:
            row = pg.execute(_FACTS_SQL).fetchone()
    except psycopg.Error as exc:
        reason = error_reason(conn, exc)
        raise BackupError(f"cannot check change capture on {conn.redacted()}: {reason}") from None
    assert row is not None  # current_user is always in pg_roles
    return _Facts(*row)


def _wal_level(facts: _Facts) -> Problem | None:
    if facts.wal_level == "logical":
        return None
    return Problem(
        "wal_level",
        f"Change capture needs wal_level = logical, but the server runs with wal_level = "
        f"{facts.wal_level}.",
        "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL.",
    )


def _privilege(facts: _Facts) -> Problem | None:
    if facts.privileged:
        return None
    return Problem(
        "replication_privilege",
        f"Role {facts.role} may not use replication slots: it has neither the REPLICATION "
        "attribute nor superuser.",
        f"ALTER ROLE {facts.role} REPLICATION; (run by a superuser)",
    )


def _slots(facts: _Facts) -> Problem | None:
    if facts.slots_used < facts.max_slots:
        return None
    # A chain holds one slot, and a second one while an incremental rotates it.
    return Problem(
        "replication_slots",
        f"No replication slot is free: {facts.slots_used} of max_replication_slots = "
        f"{facts.max_slots} are in use.",
        f"ALTER SYSTEM SET max_replication_slots = {facts.slots_used + 2}; then restart "
        "PostgreSQL (or drop unused slots with pg_drop_replication_slot).",
    )


def _senders(facts: _Facts) -> Problem | None:
    if facts.senders_used < facts.max_senders:
        return None
    return Problem(
        "wal_senders",
        f"No WAL sender is free for the replication connection that creates a slot: "
        f"{facts.senders_used} of max_wal_senders = {facts.max_senders} are in use.",
        f"ALTER SYSTEM SET max_wal_senders = {facts.senders_used + 1}; then restart PostgreSQL.",
    )


def replication_connection_problem(
    conn: ConnectionInfo, role: str, client_address: str | None
) -> Problem | None:
    """Open and close a ``replication=database`` connection, as a backup's slot needs.

    ``role`` is spelled as in SQL (quoted when it must be) and ``client_address`` is how
    the server sees this client (``192.0.2.7/32``; None over a Unix socket), for the fix.
    pg_hba.conf matches such a connection by its database name like any other (the keyword
    ``replication`` covers physical replication only), so the fix names the database.
    """
    try:
        psycopg.connect(make_conninfo(conn.conninfo, replication="database")).close()
    except psycopg.Error as exc:
        reason = error_reason(conn, exc)
        if "pg_hba.conf" in reason:
            return _hba_problem(conn, role, client_address, reason)
        return Problem(
            "replication_connection",
            f"A replication connection (replication=database) to {conn.redacted()} failed: "
            f"{reason}.",
            "Connect directly to PostgreSQL (connection poolers usually refuse replication "
            "connections) and see the server log for the reason.",
        )
    return None


def _hba_problem(
    conn: ConnectionInfo, role: str, client_address: str | None, reason: str
) -> Problem:
    database = conn.dbname if _PLAIN_NAME_RE.fullmatch(conn.dbname) else f'"{conn.dbname}"'
    who = f"{database} {role}"
    where = f"host {who} {client_address}" if client_address else f"local {who}"
    return Problem(
        "pg_hba",
        f"pg_hba.conf refuses the replication connection of role {role} to database "
        f"{database}: {reason}.",
        f"Add the line `{where} scram-sha-256` to pg_hba.conf above any line that rejects "
        "it (a replication=database connection is matched by its database, not by the "
        "keyword replication), then run SELECT pg_reload_conf();",
    )


def plugin_problem(conn: ConnectionInfo, plugin: str = PLUGIN) -> Problem | None:
    """Create and drop a temporary slot with ``plugin``: the only way to know it loads."""
    probe = f"pgbackup_probe_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(conn.conninfo, autocommit=True) as pg:
            pg.execute(_PROBE_TIMEOUT)
            try:
                pg.execute(_PROBE_SQL, (probe, plugin))
            except psycopg.errors.QueryCanceled:
                return None  # loaded, then waited for long transactions: the plugin works
            pg.execute("SELECT pg_drop_replication_slot(%s)", (probe,))
    except psycopg.Error as exc:
        reason = error_reason(conn, exc)
        return Problem(
            "output_plugin",
            f"A logical slot with the output plugin {plugin} cannot be created: {reason}.",
            f"Install the server's contrib modules, which hold {plugin} (the package "
            "postgresql-contrib or postgresqlNN-contrib of the server's major version).",
        )
    return None
