"""Giving a restored database what its archive lacks, from the backup's saved globals
(:mod:`pgbackup.globals`): the roles it needs, and the database's settings and grants.

Both go through the maintenance connection of the target server:

- **Roles** are created only where missing, in one transaction (all or none), with their
  attributes, connection limit, expiry, password hash (if it was saved), settings and
  comment, and the memberships among the roles created. A role that exists is never
  altered, so a membership linking a created role to an existing one is left out, and said.
- **Settings and grants** go to a database the restore has just created, each statement in
  a savepoint of one transaction: one the server refuses (an unknown setting, a privilege
  the restoring user lacks) is reported and the others still apply. ``ALTER DATABASE ...
  SET`` and database GRANTs belong to the database's OID, so they survive its renaming
  (the swap of an overwrite, the final rename of a new-database restore).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgbackup.connection import ConnectionInfo
from pgbackup.dbadmin import maintenance_connection
from pgbackup.globals import (
    DatabaseSettings,
    Membership,
    Role,
    SavedGlobals,
    database_grants,
    database_statements,
    set_clause,
)
from pgbackup.restore import RestoreError

_ATTRIBUTES = ("superuser", "inherit", "createrole", "createdb", "login", "replication",
               "bypassrls")


@dataclass(frozen=True)
class RolesCreated:
    roles: list[str]
    memberships: list[str]  # "GRANT <role> TO <member>", among the created roles
    left_out: list[str]  # memberships that would have touched a role that exists


@dataclass(frozen=True)
class SettingsApplied:
    applied: list[str]  # the statements, naming the database as it will be called
    failed: list[str]  # "<statement>: <the server's reason>"
    skipped: list[str]  # what was not tried, and why (a role that does not exist)


def create_roles(server: ConnectionInfo, saved: SavedGlobals, names: Iterable[str]
                 ) -> RolesCreated:
    """Create those of the saved roles ``names`` that do not exist on ``server``; raises
    RestoreError (and creates none) if the server refuses one."""
    with maintenance_connection(server) as pg:
        existing = _role_names(pg)
        roles = [role for name in sorted(set(names)) if (role := saved.role(name))
                 and role.name not in existing]
        created = {role.name for role in roles}
        among = [m for m in saved.memberships if m.role in created and m.member in created]
        left_out = [f"{_membership(m)} ({m.member if m.role in created else m.role} exists "
                    "already and was left alone)" for m in saved.memberships
                    if (m.role in created) != (m.member in created)]
        try:
            with pg.transaction():
                for role in roles:
                    for statement in _role_statements(role):
                        pg.execute(statement)
                for membership in among:
                    pg.execute(sql.SQL("GRANT {} TO {}{}").format(
                        sql.Identifier(membership.role), sql.Identifier(membership.member),
                        sql.SQL(" WITH ADMIN OPTION" if membership.admin_option else "")))
        except psycopg.Error as exc:
            reason = server.redact_text(str(exc).strip().splitlines()[0])
            raise RestoreError(f"cannot create the missing roles "
                               f"{', '.join(sorted(created))}: {reason}") from None
    return RolesCreated(sorted(created), [_membership(m) for m in among], left_out)


def _role_statements(role: Role) -> Iterator[sql.Composed]:
    name = sql.Identifier(role.name)
    options: list[sql.Composable] = [sql.SQL(attribute.upper() if getattr(role, attribute) else
                       f"NO{attribute.upper()}") for attribute in _ATTRIBUTES]
    options.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(role.connection_limit)))
    if role.valid_until is not None:
        options.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(role.valid_until)))
    if role.password is not None:
        options.append(sql.SQL("PASSWORD {}").format(sql.Literal(role.password)))
    yield sql.SQL("CREATE ROLE {} WITH {}").format(name, sql.SQL(" ").join(options))
    for entry in role.settings:
        yield sql.SQL("ALTER ROLE {} ").format(name) + set_clause(entry)
    if role.comment is not None:
        yield sql.SQL("COMMENT ON ROLE {} IS {}").format(name, sql.Literal(role.comment))


def _membership(membership: Membership) -> str:
    return f"GRANT {membership.role} TO {membership.member}"


def apply_database_settings(
    server: ConnectionInfo, database: str, saved: DatabaseSettings, *,
    shown_as: str | None = None, comment: bool = True,
) -> SettingsApplied:
    """Give the just-restored ``database`` the saved owner, grants, settings, connection
    limit and (with ``comment``) comment; the report names it ``shown_as`` (the name it is
    about to get), else ``database``."""
    with maintenance_connection(server) as pg:
        owner, grants, roles = _owner(pg, database), database_grants(pg, database), _role_names(pg)

        def render(name: str) -> tuple[list[sql.Composed], list[str]]:
            return database_statements(saved, name, owner=owner, grants=grants, roles=roles,
                                       comment=comment)

        statements, skipped = render(database)
        shown = render(shown_as or database)[0]
        applied, failed = [], []
        with pg.transaction():
            for statement, text in zip(statements, (s.as_string(pg) for s in shown),
                                       strict=True):
                try:
                    with pg.transaction():
                        pg.execute(statement)
                    applied.append(text)
                except psycopg.Error as exc:
                    failed.append(f"{text}: {server.redact_text(str(exc).strip())}")
    return SettingsApplied(applied, failed, skipped)


def _owner(pg: psycopg.Connection, database: str) -> str:
    row = pg.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                     [database]).fetchone()
    if row is None:
        raise RestoreError(f"database {database} does not exist")
    return str(row[0])


def _role_names(pg: psycopg.Connection) -> frozenset[str]:
    return frozenset(row[0] for row in pg.execute("SELECT rolname FROM pg_roles"))
