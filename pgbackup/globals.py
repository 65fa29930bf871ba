"""Roles and database-level settings: what a pg_dump archive lacks, saved beside it.

A custom-format archive holds a database's objects with their owners and GRANTs, but not
the roles themselves, nor what belongs to the database as a whole: ``ALTER DATABASE ...
SET``, ``ALTER ROLE ... IN DATABASE ... SET``, ``GRANT ... ON DATABASE``, its owner,
connection limit and comment. Every backup saves them in a sidecar file beside its
artifact, ``<id>.globals.json`` (plus ``.zst`` and ``.age`` as the artifact has them, to
the same recipients), listed in the manifest with its size and SHA-256.

The sidecar is JSON (:class:`SavedGlobals`): the text of ``pg_dumpall --globals-only``,
kept as is for stock tools; the same roles and memberships, structured, so that a restore
can create exactly the roles it misses; and the database's settings and grants with role
*names*, turned into SQL (:func:`database_statements`) for whatever name the database is
restored under. ``database_sql`` holds that SQL for the original name, for a restore by
hand. Role passwords (their hashes) are saved only when asked.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pgbackup.connection import ConnectionInfo
from pgbackup.encryption import Identity, Recipient, decrypting_reader, encrypting_writer
from pgbackup.errors import BackupError, DecryptionError
from pgbackup.manifest import GlobalsFile, Manifest
from pgbackup.processes import die_with_parent
from pgbackup.storage import Storage
from pgbackup.streams import HashingWriter, Readable, archive_reader, zstd_writer

PG_DUMPALL_TIMEOUT = 600
MAX_SIDECAR_BYTES = 64 * 1024 * 1024
Privilege = Literal["CREATE", "CONNECT", "TEMPORARY"]
# Settings whose value is a list of (possibly quoted) items: pg_dump splits them too.
_LIST_SETTINGS = frozenset({
    "local_preload_libraries", "search_path", "session_preload_libraries",
    "shared_preload_libraries", "temp_tablespaces", "unix_socket_directories",
})
_LIST_ITEM_RE = re.compile(r'\s*("(?:[^"]|"")*"|[^\s,"]+)\s*(,|$)')

_DATABASE_SQL = """
SELECT datname, pg_get_userbyid(datdba), datconnlimit, shobj_description(oid, 'pg_database')
FROM pg_database WHERE datname = current_database()
"""
# The effective ACL: a NULL datacl means the default one (owner: all; PUBLIC: CONNECT, TEMP).
_GRANTS_SQL = """
SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) AS a
WHERE d.datname = %s
ORDER BY 1 NULLS FIRST, 2
"""
_SETTINGS_SQL = """
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig
FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
WHERE d.datname = current_database()
"""
_ROLES_SQL = """
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit, to_json(r.rolvaliduntil) #>> '{}',
       shobj_description(r.oid, 'pg_authid'),
       coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                 WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}')
FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1
"""
_PASSWORDS_SQL = "SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL"
_MEMBERSHIPS_SQL = """
SELECT g.rolname, m.rolname, a.admin_option
FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
WHERE m.rolname !~ '^pg_'
ORDER BY 1, 2
"""


class GlobalsError(RuntimeError):
    """A backup's saved roles and settings are missing, unreadable or altered."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Grant(_Frozen):
    """One privilege on the database; no ``grantee`` is PUBLIC."""

    grantee: str | None = None
    privilege: Privilege
    grantable: bool = False


class DatabaseSettings(_Frozen):
    """What belongs to the database itself; settings are ``name=value`` as PostgreSQL
    stores them (pg_db_role_setting), ``grants`` the effective ACL, defaults spelled out."""

    name: str
    owner: str
    connection_limit: int = -1
    comment: str | None = None
    settings: list[str] = Field(default_factory=list)
    role_settings: dict[str, list[str]] = Field(default_factory=dict)
    grants: list[Grant] = Field(default_factory=list)

    def roles(self) -> set[str]:
        """The roles these settings name: the owner, grantees, roles with settings."""
        grantees = {grant.grantee for grant in self.grants if grant.grantee}
        return {self.owner, *grantees, *self.role_settings}


class Role(_Frozen):
    name: str
    superuser: bool = False
    inherit: bool = True
    createrole: bool = False
    createdb: bool = False
    login: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    valid_until: str | None = None
    password: str | None = None  # the hash, only when role passwords are saved
    settings: list[str] = Field(default_factory=list)  # ALTER ROLE ... SET, every database
    comment: str | None = None


class Membership(_Frozen):
    role: str
    member: str
    admin_option: bool = False


class SavedGlobals(_Frozen):
    """The sidecar's content."""

    format: Literal["pgbackup-globals"] = "pgbackup-globals"
    version: Literal[1] = 1
    server_version: str
    role_passwords: bool
    database: DatabaseSettings
    roles: list[Role]
    memberships: list[Membership]
    database_sql: str
    pg_dumpall: str

    def role(self, name: str) -> Role | None:
        return next((role for role in self.roles if role.name == name), None)

    def to_bytes(self) -> bytes:
        return (self.model_dump_json(indent=2, exclude_none=True) + "\n").encode()


def globals_name(artifact: str) -> str:
    """The sidecar beside ``artifact``: ``<id>.dump.zst.age`` -> ``<id>.globals.json.zst.age``."""
    for kind in (".dump", ".sql"):  # an incremental (.sql) has none, but may be asked
        stem, found, suffixes = artifact.partition(kind)
        if found:
            return f"{stem}.globals.json{suffixes}"
    raise ValueError(f"not an artifact name: {artifact!r}")


# ---- capture ------------------------------------------------------------------------------

def capture_globals(
    conn: ConnectionInfo, role_passwords: bool = False, pg_dumpall: str = "pg_dumpall"
) -> SavedGlobals:
    """Read ``conn``'s roles and its database's settings and grants; BackupError if the
    server or pg_dumpall refuses. Without ``role_passwords`` no password hash is read
    (pg_roles, ``--no-role-passwords``), which needs no superuser; with it, pg_authid is
    read, which does."""
    dumpall = _run_pg_dumpall(conn, role_passwords, pg_dumpall)
    try:
        with psycopg.connect(conn.conninfo, autocommit=True) as pg:
            database = _database_settings(pg)
            roles = _roles(pg, _passwords(pg) if role_passwords else {})
            memberships = [Membership(role=g, member=m, admin_option=admin)
                           for g, m, admin in pg.execute(_MEMBERSHIPS_SQL)]
            version = str(_one(pg, "SHOW server_version")[0]).split()[0]
    except psycopg.Error as exc:
        message = conn.redact_text(str(exc).strip())
        raise BackupError(f"cannot read the roles and settings of {conn.dbname}: {message}"
                          ) from None
    # As if created by whoever runs the script (no role is called ""): the owner is set too.
    script = database_statements(database, database.name, owner="", grants=default_grants(""))[0]
    return SavedGlobals(
        server_version=version, role_passwords=role_passwords, database=database, roles=roles,
        memberships=memberships, pg_dumpall=dumpall,
        database_sql="".join(f"{statement.as_string(None).strip()};\n" for statement in script),
    )


def _run_pg_dumpall(conn: ConnectionInfo, role_passwords: bool, pg_dumpall: str) -> str:
    """``pg_dumpall --globals-only`` connected to the backed-up database itself (``-l``):
    the maintenance database may be closed to the role."""
    options = [] if role_passwords else ["--no-role-passwords"]
    with conn.subprocess_env() as (env, dsn):
        args = [pg_dumpall, "--globals-only", *options, "--no-password", f"--dbname={dsn}",
                f"--database={conn.dbname}"]
        try:
            result = subprocess.run(
                args, capture_output=True, env=env, timeout=PG_DUMPALL_TIMEOUT, check=False,
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(),
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise BackupError(
                f"pg_dumpall not found: {pg_dumpall!r} is not an executable on PATH; install "
                "the PostgreSQL client tools") from exc
        except subprocess.TimeoutExpired:
            raise BackupError(f"pg_dumpall --globals-only did not finish within "
                              f"{PG_DUMPALL_TIMEOUT} s") from None
    if result.returncode != 0:
        detail = conn.redact_text(result.stderr.decode("utf-8", "replace").strip())
        raise BackupError(
            f"pg_dumpall --globals-only failed with exit status {result.returncode}:\n{detail}")
    return result.stdout.decode("utf-8", "replace")


def _database_settings(pg: psycopg.Connection) -> DatabaseSettings:
    name, owner, limit, comment = _one(pg, _DATABASE_SQL)
    everyone: list[str] = []
    per_role: dict[str, list[str]] = {}
    for role, config in pg.execute(_SETTINGS_SQL):
        if role is None:
            everyone = list(config)
        else:
            per_role[role] = list(config)
    return DatabaseSettings(name=name, owner=owner, connection_limit=limit, comment=comment,
                            settings=everyone, role_settings=per_role,
                            grants=database_grants(pg, name))


def database_grants(pg: psycopg.Connection, name: str) -> list[Grant]:
    """The privileges on database ``name`` as they are (a default ACL spelled out)."""
    return [Grant(grantee=grantee, privilege=privilege, grantable=grantable)
            for grantee, privilege, grantable in pg.execute(_GRANTS_SQL, [name])]


def _passwords(pg: psycopg.Connection) -> dict[str, str]:
    try:
        return dict(pg.execute(_PASSWORDS_SQL).fetchall())
    except psycopg.errors.InsufficientPrivilege:
        raise BackupError("saving role passwords reads pg_authid, which needs a superuser: "
                          "connect as one, or leave role passwords out") from None


def _roles(pg: psycopg.Connection, passwords: dict[str, str]) -> list[Role]:
    return [
        Role(name=row[0], superuser=row[1], inherit=row[2], createrole=row[3],
             createdb=row[4], login=row[5], replication=row[6], bypassrls=row[7],
             connection_limit=row[8], valid_until=row[9], comment=row[10],
             settings=list(row[11]), password=passwords.get(row[0]))
        for row in pg.execute(_ROLES_SQL)
    ]


def _one(pg: psycopg.Connection, query: str) -> tuple[Any, ...]:
    row = pg.execute(query).fetchone()
    assert row is not None  # the connected database, SHOW: always one row
    return tuple(row)


# ---- the sidecar file ---------------------------------------------------------------------

def write_globals(
    storage: Storage, name: str, saved: bytes, compress: bool,
    recipients: Sequence[Recipient] | None,
) -> GlobalsFile:
    """Store the sidecar ``name``: compressed and encrypted as the artifact is."""
    with storage.atomic_writer(name) as raw:
        stored = HashingWriter(raw)
        with (encrypting_writer(stored, recipients) if recipients else nullcontext(stored)
              ) as encrypted, (zstd_writer(encrypted) if compress else nullcontext(encrypted)
                               ) as sink:
            sink.write(saved)
    return GlobalsFile(file=name, size=storage.size(name), sha256=stored.hexdigest())


def read_globals(
    storage: Storage, manifest: Manifest, identities: Sequence[Identity] | None = None
) -> SavedGlobals:
    """The backup's saved roles and settings, checked against the manifest (size, SHA-256)
    and decrypted; GlobalsError if there are none or they cannot be read."""
    info = manifest.globals
    if info is None:
        raise GlobalsError(f"backup {manifest.backup_id} has no saved roles and settings "
                           "(taken before they were saved)")
    try:
        with storage.open_read(info.file) as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        raise GlobalsError(f"{info.file} is missing from storage") from None
    if len(raw) != info.size or hashlib.sha256(raw).hexdigest() != info.sha256:
        raise GlobalsError(f"{info.file} does not match its manifest: it is truncated or "
                           "was altered")
    try:
        with _plaintext(io.BytesIO(raw), manifest, identities) as plain:
            return SavedGlobals.model_validate(json.loads(plain.read()))
    except (DecryptionError, ValidationError, ValueError, OSError) as exc:
        raise GlobalsError(f"{info.file} cannot be read: {str(exc).splitlines()[0]}") from None


@contextmanager
def _plaintext(
    raw: Readable, manifest: Manifest, identities: Sequence[Identity] | None
) -> Iterator[Readable]:
    assert manifest.globals is not None
    decrypted: AbstractContextManager[Readable]
    if manifest.encryption is None:
        decrypted = nullcontext(raw)
    elif not identities:
        raise DecryptionError(f"{manifest.globals.file} is encrypted with age: an identity "
                              "holding one of its keys is needed")
    else:
        decrypted = decrypting_reader(raw, identities, manifest.globals.file,
                                      manifest.encryption.recipients)
    with decrypted as plain, archive_reader(plain, manifest.compression) as reader:
        yield reader


# ---- SQL for a restored database ----------------------------------------------------------

def default_grants(owner: str) -> list[Grant]:
    """The ACL of a new database (acldefault): its owner has every privilege, PUBLIC may
    connect and create temporary tables."""
    return [Grant(grantee=owner, privilege=privilege)
            for privilege in ("CREATE", "CONNECT", "TEMPORARY")] + [
        Grant(privilege="CONNECT"), Grant(privilege="TEMPORARY")]


def database_statements(
    saved: DatabaseSettings, target: str, *, owner: str, grants: Sequence[Grant],
    roles: Collection[str] | None = None, comment: bool = True,
) -> tuple[list[sql.Composed], list[str]]:
    """The SQL giving the freshly restored database ``target`` (owned by ``owner``, with
    ``grants``) the saved owner, grants, settings, connection limit and comment; and what
    is left out, and why. ``roles`` are the server's roles (None: all are there): one that
    is missing is never named."""
    db = sql.Identifier(target)
    exists: Callable[[str], bool] = (lambda _: True) if roles is None else roles.__contains__
    statements, skipped = [], []
    new_owner = owner
    if saved.owner != owner and exists(saved.owner):
        statements.append(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            db, sql.Identifier(saved.owner)))
        new_owner = saved.owner
    elif saved.owner != owner:
        skipped.append(f"owner {saved.owner}: no such role, the owner stays {owner}")
    acl, missing = _acl_statements(db, saved, owner, grants, new_owner, exists)
    statements += acl
    skipped += missing
    statements += [sql.SQL("ALTER DATABASE {} ").format(db) + set_clause(entry)
                   for entry in saved.settings]
    for role, entries in sorted(saved.role_settings.items()):
        if not exists(role):
            skipped.append(f"settings of role {role} in the database: no such role")
            continue
        statements += [sql.SQL("ALTER ROLE {} IN DATABASE {} ").format(
            sql.Identifier(role), db) + set_clause(entry) for entry in entries]
    if saved.connection_limit != -1:
        statements.append(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
            db, sql.Literal(saved.connection_limit)))
    if saved.comment is not None and comment:
        statements.append(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            db, sql.Literal(saved.comment)))
    elif saved.comment is not None:
        skipped.append("the database's comment: the restore marks the database with its own")
    return statements, skipped


def _acl_statements(
    db: sql.Identifier, saved: DatabaseSettings, owner: str, grants: Sequence[Grant],
    new_owner: str, exists: Callable[[str], bool],
) -> tuple[list[sql.Composed], list[str]]:
    """REVOKE what the database grants now and should not, GRANT what it lacks. The
    owner's privileges follow the owner, whoever it is on either side."""
    def key(grant: Grant, old: str) -> tuple[str | None, str]:
        return (new_owner if grant.grantee == old else grant.grantee), grant.privilege

    now = {key(grant, owner): grant.grantable for grant in grants}
    wanted = {key(grant, saved.owner): grant.grantable for grant in saved.grants}
    statements, skipped = [], []
    for grantee, privilege in sorted(now.keys() - wanted.keys(), key=_sort_key):
        statements.append(_revoke(db, privilege, grantee, grant_option=False))
    for (grantee, privilege), grantable in sorted(wanted.items(), key=lambda i: _sort_key(i[0])):
        if grantee is not None and not exists(grantee):
            skipped.append(f"GRANT {privilege} to {grantee}: no such role")
        elif (grantee, privilege) not in now or (grantable and not now[grantee, privilege]):
            statements.append(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(privilege), db, _grantee(grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else "")))
        elif now[grantee, privilege] and not grantable:
            statements.append(_revoke(db, privilege, grantee, grant_option=True))
    return statements, skipped


def _sort_key(item: tuple[str | None, str]) -> tuple[str, str]:
    return item[0] or "", item[1]


def _revoke(db: sql.Identifier, privilege: str, grantee: str | None,
            grant_option: bool) -> sql.Composed:
    return sql.SQL("REVOKE {}{} ON DATABASE {} FROM {}").format(
        sql.SQL("GRANT OPTION FOR " if grant_option else ""), sql.SQL(privilege), db,
        _grantee(grantee))


def _grantee(role: str | None) -> sql.Composable:
    return sql.SQL("PUBLIC") if role is None else sql.Identifier(role)


def set_clause(entry: str) -> sql.Composed:
    """``SET name = value`` for one stored ``name=value``; list settings (search_path) are
    split into their items, as pg_dump does, or they would become one quoted item."""
    name, _, value = entry.partition("=")
    items = split_list(value) if name.lower() in _LIST_SETTINGS else [value]
    return sql.SQL("SET {} = {}").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.Literal(item) for item in items or [""]))


def split_list(value: str) -> list[str]:
    """``"$user", public`` -> ``['$user', 'public']`` (PostgreSQL's SplitGUCList); a value
    that does not parse is kept whole."""
    items, position = [], 0
    while position < len(value):
        match = _LIST_ITEM_RE.match(value, position)
        if match is None:
            return [value]
        item = match[1]
        items.append(item[1:-1].replace('""', '"') if item.startswith('"') else item)
        position = match.end()
        if not match[2]:
            break
    return items
