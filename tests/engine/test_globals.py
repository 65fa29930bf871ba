"""The roles and database settings a pg_dump archive lacks: saved beside every backup,
applied to a database restored under another name, roles created only where missing."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard
from psycopg import sql
from pyrage import x25519

from pgbackup import (
    BackupError,
    ConnectionInfo,
    LocalStorage,
    RestoreError,
    new_backup_id,
    run_dump,
)
from pgbackup.globals import (
    GlobalsError,
    capture_globals,
    globals_name,
    read_globals,
    set_clause,
    split_list,
)
from pgbackup.globals_apply import apply_database_settings, create_roles
from tools.localservices import PostgresServer

# Database settings with role names, comparable across databases and servers.
SETTINGS_SQL = """
SELECT coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), '*'), s.setconfig
FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
WHERE d.datname = %s ORDER BY 1
"""
ACL_SQL = """
SELECT coalesce(pg_get_userbyid(NULLIF(a.grantee, 0)), 'PUBLIC'), a.privilege_type,
       a.is_grantable
FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) AS a
WHERE d.datname = %s ORDER BY 1, 2
"""
DATABASE_SQL = """
SELECT pg_get_userbyid(datdba), datconnlimit, shobj_description(oid, 'pg_database')
FROM pg_database WHERE datname = %s
"""


@pytest.fixture
def roles(pg_server: PostgresServer) -> Iterator[Callable[[str], str]]:
    """Factory of unique role names (the server is shared), dropped afterwards (the
    databases the tests made, where they could own something, are gone by then)."""
    made: list[str] = []

    def make(kind: str) -> str:
        made.append(f"{kind}_{secrets.token_hex(4)}")
        return made[-1]

    yield make
    with pg_server.connect() as conn:
        for role in made:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def database(pg_server: PostgresServer, roles) -> Iterator[tuple[str, str, str]]:
    """(name, a role granted CONNECT with settings of its own there, a group role): a small
    database with settings, grants and a comment that pg_dump's archive does not hold."""
    name, reader, group = f"globals_{secrets.token_hex(4)}", roles("reader"), roles("group")
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'not-to-be-saved' "
                             "CONNECTION LIMIT 3 IN ROLE {}").format(
            sql.Identifier(reader), sql.Identifier(group)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for statement in (
            "ALTER DATABASE {db} SET work_mem = '8MB'",
            "ALTER DATABASE {db} SET search_path = \"$user\", public, \"My Schema\"",
            "ALTER ROLE {reader} IN DATABASE {db} SET statement_timeout = '5s'",
            "REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC",
            "GRANT CONNECT ON DATABASE {db} TO {reader}",
            "GRANT CREATE ON DATABASE {db} TO {group} WITH GRANT OPTION",
            "COMMENT ON DATABASE {db} IS 'the shop''s database'",
        ):
            conn.execute(sql.SQL(statement).format(
                db=sql.Identifier(name), reader=sql.Identifier(reader),
                group=sql.Identifier(group)))
    with pg_server.connect(name) as conn:
        conn.execute("CREATE TABLE item (id int PRIMARY KEY, label text)")
        conn.execute("INSERT INTO item SELECT n, 'item ' || n FROM generate_series(1, 50) n")
    yield name, reader, group
    pg_server.drop_database(name)


@pytest.fixture
def new_database(pg_server: PostgresServer) -> Iterator[Callable[[], str]]:
    names: list[str] = []

    def create() -> str:
        names.append(f"restored_{secrets.token_hex(4)}")
        pg_server.create_database(names[-1])
        return names[-1]

    yield create
    for name in names:
        pg_server.drop_database(name)


def described(pg_server: PostgresServer, name: str) -> tuple[object, ...]:
    with pg_server.connect() as conn:
        return (conn.execute(SETTINGS_SQL, [name]).fetchall(),
                conn.execute(ACL_SQL, [name]).fetchall(),
                conn.execute(DATABASE_SQL, [name]).fetchone())


def connection(pg_server: PostgresServer, name: str = "postgres") -> ConnectionInfo:
    return ConnectionInfo.from_url(pg_server.url(name))


def sidecar_plaintext(storage: LocalStorage, name: str) -> bytes:
    with storage.open_read(name) as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle).read()


def test_settings_and_grants_are_applied_under_another_name_and_survive_a_rename(
    pg_server: PostgresServer, database, new_database
) -> None:
    name, reader, group = database
    saved = capture_globals(connection(pg_server, name))
    assert saved.database.settings == ["work_mem=8MB", 'search_path="$user", public, '
                                                       '"My Schema"']
    assert saved.database.role_settings == {reader: ["statement_timeout=5s"]}
    target = new_database()

    outcome = apply_database_settings(connection(pg_server), target, saved.database,
                                      shown_as="shown")
    assert outcome.failed == [] and outcome.skipped == []
    assert any(text.startswith('ALTER DATABASE "shown" SET "work_mem"')
               for text in outcome.applied)

    original = described(pg_server, name)
    assert described(pg_server, target) == original
    settings, acl, _ = original
    assert ("*", ["work_mem=8MB", 'search_path="$user", public, "My Schema"']) in settings
    assert (reader, ["statement_timeout=5s"]) in settings
    assert ("PUBLIC", "CONNECT", False) not in acl and (reader, "CONNECT", False) in acl
    assert (group, "CREATE", True) in acl
    renamed = f"{target}_renamed"
    with pg_server.connect() as conn:  # settings and grants belong to the OID
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(target), sql.Identifier(renamed)))
    try:
        assert described(pg_server, renamed) == original
    finally:
        pg_server.drop_database(renamed)


def test_a_missing_role_is_left_out_and_said(
    pg_server: PostgresServer, database, new_database
) -> None:
    name, reader, _group = database
    saved = capture_globals(connection(pg_server, name))
    gone = saved.database.model_copy(update={
        "grants": [*saved.database.grants,
                   *[g.model_copy(update={"grantee": "no_such_role_x"})
                     for g in saved.database.grants if g.grantee == reader]]})
    target = new_database()
    outcome = apply_database_settings(connection(pg_server), target, gone, comment=False)
    assert outcome.failed == []
    assert outcome.skipped == ["GRANT CONNECT to no_such_role_x: no such role",
                               "the database's comment: the restore marks the database "
                               "with its own"]
    assert described(pg_server, target)[:2] == described(pg_server, name)[:2]


def test_the_sidecar_holds_the_roles_and_no_password_unless_asked(
    pg_server: PostgresServer, database, tmp_path: Path
) -> None:
    name, reader, group = database
    storage = LocalStorage(tmp_path / "backups")
    manifest = run_dump(connection(pg_server, name), storage, new_backup_id(), "full")

    assert manifest.globals is not None
    assert manifest.globals.file == globals_name(manifest.artifact)
    assert manifest.globals.file == f"{manifest.backup_id}.globals.json.zst"
    plain = sidecar_plaintext(storage, manifest.globals.file)
    assert b"SCRAM-SHA-256" not in plain and b"rolpassword" not in plain
    saved = read_globals(storage, manifest)
    assert f"CREATE ROLE {reader};" in saved.pg_dumpall
    assert f"GRANT {group} TO {reader}" in saved.pg_dumpall
    assert "PASSWORD" not in saved.pg_dumpall and saved.role_passwords is False
    role = saved.role(reader)
    assert role is not None and role.login and role.connection_limit == 3
    assert role.password is None
    assert f'GRANT CONNECT ON DATABASE "{name}" TO "{reader}";' in saved.database_sql

    with_passwords = run_dump(connection(pg_server, name), storage, new_backup_id(), "full",
                              role_passwords=True)
    assert with_passwords.globals is not None
    saved = read_globals(storage, with_passwords)
    role = saved.role(reader)
    assert role is not None and role.password is not None
    assert role.password.startswith("SCRAM-SHA-256$")
    assert role.password in saved.pg_dumpall and saved.role_passwords is True


def test_an_encrypted_target_gets_an_encrypted_sidecar_listed_with_its_sha256(
    pg_server: PostgresServer, database, tmp_path: Path
) -> None:
    identity = x25519.Identity.generate()
    storage = LocalStorage(tmp_path / "backups")
    manifest = run_dump(connection(pg_server, database[0]), storage, new_backup_id(),
                        "schema-only", encrypt_to=[str(identity.to_public())])

    assert manifest.globals is not None  # schema-only backups save them too
    stored = storage.path(manifest.globals.file).read_bytes()
    assert manifest.globals.file.endswith(".globals.json.zst.age")
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert manifest.globals.sha256 == hashlib.sha256(stored).hexdigest()
    assert manifest.globals.size == len(stored)
    assert read_globals(storage, manifest, [identity]).database.name == database[0]
    with pytest.raises(GlobalsError, match="encrypted with age"):
        read_globals(storage, manifest)


def test_an_altered_sidecar_is_refused(
    pg_server: PostgresServer, database, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "backups")
    manifest = run_dump(connection(pg_server, database[0]), storage, new_backup_id(), "full")
    assert manifest.globals is not None
    path = storage.path(manifest.globals.file)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(GlobalsError, match="does not match its manifest"):
        read_globals(storage, manifest)


def test_a_failed_dump_leaves_no_sidecar(
    pg_server: PostgresServer, database, tmp_path: Path, fake_pg_dump
) -> None:
    storage = LocalStorage(tmp_path / "backups")
    failing = fake_pg_dump('echo "pg_dump: error: disk on fire" >&2; exit 1')
    with pytest.raises(Exception, match="disk on fire"):
        run_dump(connection(pg_server, database[0]), storage, new_backup_id(), "full",
                 pg_dump=failing)
    assert list(storage.root.iterdir()) == []


def test_create_roles_creates_only_the_missing_ones(
    pg_server: PostgresServer, database, roles
) -> None:
    name, reader, group = database
    bystander = roles("bystander")
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(bystander)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(bystander),
                                                      sql.Identifier(reader)))
        conn.execute(sql.SQL("ALTER ROLE {} SET work_mem = '4MB'").format(
            sql.Identifier(reader)))
        conn.execute(sql.SQL("COMMENT ON ROLE {} IS 'reads'").format(sql.Identifier(reader)))
    saved = capture_globals(connection(pg_server, name))
    pg_server.drop_database(name)  # the roles own nothing and hold nothing elsewhere
    with pg_server.connect() as conn:
        for role in (reader, group):
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    outcome = create_roles(connection(pg_server), saved, [reader, group, bystander, "nobody"])

    assert outcome.roles == sorted([reader, group])
    assert outcome.memberships == [f"GRANT {group} TO {reader}"]
    assert outcome.left_out == [f"GRANT {bystander} TO {reader} ({bystander} exists already "
                                "and was left alone)"]
    with pg_server.connect() as conn:
        row = conn.execute(
            "SELECT r.rolcanlogin, r.rolconnlimit, a.rolpassword IS NULL, r.rolconfig, "
            "shobj_description(r.oid, 'pg_authid') FROM pg_roles r "
            "JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname = %s",
            [reader]).fetchone()
        member_of = {r[0] for r in conn.execute(
            "SELECT pg_get_userbyid(roleid) FROM pg_auth_members "
            "WHERE member = %s::regrole", [reader])}
    assert row == (True, 3, True, ["work_mem=4MB"], "reads")
    assert member_of == {group}  # the existing role was not touched


def test_create_roles_creates_nothing_when_one_fails(
    pg_server: PostgresServer, database
) -> None:
    name, reader, group = database
    saved = capture_globals(connection(pg_server, name))
    broken = saved.model_copy(update={"roles": [
        role.model_copy(update={"valid_until": "not a time"}) if role.name == reader else role
        for role in saved.roles]})
    pg_server.drop_database(name)
    with pg_server.connect() as conn:
        for role in (reader, group):
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    with pytest.raises(RestoreError, match="cannot create the missing roles"):
        create_roles(connection(pg_server), broken, [reader, group])
    with pg_server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)",
                            [[reader, group]]).fetchone() == (0,)


def test_list_settings_are_split_as_pg_dump_does() -> None:
    assert split_list('"$user", public, "My ""odd"" Schema"') == [
        "$user", "public", 'My "odd" Schema']
    assert split_list("") == [] and split_list("a,,b") == ["a,,b"]
    assert set_clause('search_path="$user", public').as_string(None) == (
        "SET \"search_path\" = '$user', 'public'")
    assert set_clause("work_mem=8MB").as_string(None) == "SET \"work_mem\" = '8MB'"
    assert set_clause("search_path=").as_string(None) == "SET \"search_path\" = ''"


def test_a_superuser_is_not_needed_without_role_passwords(
    pg_server: PostgresServer, database, roles
) -> None:
    name = database[0]
    low = roles("low")
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(low)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(name), sql.Identifier(low)))
    url = pg_server.url(name).replace("postgres@", f"{low}@")
    saved = capture_globals(ConnectionInfo.from_url(url))
    assert low in {role.name for role in saved.roles} and saved.database.name == name
    with pytest.raises(BackupError, match="permission denied for table pg_authid"):
        capture_globals(ConnectionInfo.from_url(url), role_passwords=True)
