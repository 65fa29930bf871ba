"""Roles and database settings through the API and a real worker: a backup saves them, the
dry run names the roles the target lacks, ``createRoles`` brings them back, and restores
give the database its settings and grants again."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgbackup import LocalStorage, read_manifest, write_manifest
from services import manifest_key
from tests.support.backups import completed_backup, restore
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer

COPY = "roles_copy"
DATABASE_STATE_SQL = """
SELECT (SELECT array_agg(coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), '*')
                         || ':' || array_to_string(s.setconfig, ',') ORDER BY 1)
        FROM pg_db_role_setting s WHERE s.setdatabase = d.oid),
       (SELECT array_agg(coalesce(pg_get_userbyid(NULLIF(a.grantee, 0)), 'PUBLIC')
                         || ':' || a.privilege_type ORDER BY 1)
        FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) AS a),
       shobj_description(d.oid, 'pg_database')
FROM pg_database d WHERE d.datname = %s
"""


@pytest.fixture
def clerk(pg_server: PostgresServer, pagila: str) -> Iterator[str]:
    """A role of its own (the server is shared by the whole test session) that owns a table
    of the protected database, may connect to it and has a setting there."""
    role, database = f"clerk_{secrets.token_hex(4)}", pagila.rsplit("/", 1)[1]
    name, db = sql.Identifier(role), sql.Identifier(database)
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 5").format(name))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, name))
        conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET work_mem = '16MB'").format(
            name, db))
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("CREATE TABLE clerk_notes (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO clerk_notes SELECT n, 'note ' || n "
                     "FROM generate_series(1, 30) n")
        conn.execute(sql.SQL("ALTER TABLE clerk_notes OWNER TO {}").format(name))
        conn.execute(sql.SQL("GRANT SELECT ON actor TO {}").format(name))
    yield role
    pg_server.drop_database(COPY)
    with pg_server.connect(database) as conn:  # what it may still own or hold there
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(name))


def drop_role(pg_server: PostgresServer, url: str, role: str) -> None:
    """The role goes away the usual way: its objects handed over, its grants revoked."""
    name = sql.Identifier(role)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(name))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(name))


def database_state(pg_server: PostgresServer, name: str) -> tuple:
    with pg_server.connect() as conn:
        return conn.execute(DATABASE_STATE_SQL, [name]).fetchone()


def run_and_fetch(api, run_worker, response) -> dict:
    assert response.status_code == 202, response.get_json()
    run_worker()
    return api.get(f"/api/system/backup/restore/{response.get_json()['restoreId']}").get_json()


def test_a_dropped_owner_role_is_created_again_and_owns_its_table(
    api, run_worker, pagila, pg_server, clerk
):
    backup_id = completed_backup(api, run_worker)
    at_backup = schema_dump(pagila), table_fingerprints(pagila)
    database = pagila.rsplit("/", 1)[1]
    saved_state = database_state(pg_server, database)
    drop_role(pg_server, pagila, clerk)

    analysis = restore(api, backupId=backup_id, dryRun=True,
                       targetDatabase=COPY).get_json()["analysis"]
    compatibility = analysis["compatibility"]
    assert compatibility["rolesMissing"] == [clerk]
    saved = compatibility["savedGlobals"]
    assert saved["file"] == f"{backup_id}.globals.json.zst"
    assert saved["rolesToCreate"] == [clerk] and saved["rolesNotSaved"] == []
    assert any("createRoles" in warning and clerk in warning
               for warning in analysis["warnings"])
    assert saved["settingsSkipped"] == [  # without createRoles
        f"GRANT CONNECT to {clerk}: no such role",
        f"settings of role {clerk} in the database: no such role"]
    assert analysis["canRestore"] is True

    done = run_and_fetch(api, run_worker, restore(api, backupId=backup_id,
                                                  targetDatabase=COPY, createRoles=True))
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert result["rolesCreated"] == [clerk] and result["skippedRoles"] == []
    assert result["matchesManifest"] is True
    settings = result["databaseSettings"]
    assert settings["failed"] == []
    assert f'GRANT CONNECT ON DATABASE "{COPY}" TO "{clerk}"' in settings["applied"]

    copy = pg_server.url(COPY)
    with psycopg.connect(copy) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables "
                             "WHERE tablename = 'clerk_notes'").fetchone()[0]
        login, limit = conn.execute("SELECT rolcanlogin, rolconnlimit FROM pg_roles "
                                    "WHERE rolname = %s", [clerk]).fetchone()
    assert owner == clerk and (login, limit) == (True, 5)
    assert (schema_dump(copy), table_fingerprints(copy)) == at_backup
    settings_now, acl_now, _comment = database_state(pg_server, COPY)
    assert sorted(settings_now) == sorted(saved_state[0]) and acl_now == saved_state[1]


def test_an_overwrite_restore_brings_back_the_database_settings(
    api, run_worker, pagila, pg_server
):
    database = pagila.rsplit("/", 1)[1]
    db = sql.Identifier(database)
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '8MB'").format(db))
        conn.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(db))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS 'the rental shop'").format(db))
    backup_id = completed_backup(api, run_worker)
    at_backup = schema_dump(pagila), table_fingerprints(pagila)
    settings_at_backup = database_state(pg_server, database)
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET work_mem").format(db))
        conn.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO PUBLIC").format(db))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(db))
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("DELETE FROM payment WHERE payment_id % 3 = 0")
    assert database_state(pg_server, database) != settings_at_backup

    done = run_and_fetch(api, run_worker, restore(api, backupId=backup_id,
                                                  confirmDataLoss=True))

    assert done["status"] == "completed", done["error"]
    assert (schema_dump(pagila), table_fingerprints(pagila)) == at_backup
    assert database_state(pg_server, database) == settings_at_backup
    applied = done["result"]["databaseSettings"]["applied"]
    assert f"ALTER DATABASE \"{database}\" SET \"work_mem\" = '8MB'" in applied
    assert f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC' in applied
    assert done["result"]["rolesCreated"] == []


def test_create_roles_is_refused_with_a_dry_run_or_without_saved_roles(
    app, api, run_worker
):
    backup_id = completed_backup(api, run_worker)
    with_dry_run = restore(api, backupId=backup_id, dryRun=True, createRoles=True)
    assert with_dry_run.status_code == 400
    assert "rolesToCreate" in with_dry_run.get_json()["error"]["message"]

    storage = LocalStorage(Path(app.config["BACKUP_DIR"]))
    with app.app_context():  # as a backup taken before roles were saved
        older = read_manifest(storage, backup_id).model_copy(update={"globals": None,
                                                                     "signature": None})
        write_manifest(storage, older, manifest_key.key())
    refused = restore(api, backupId=backup_id, targetDatabase=COPY, createRoles=True)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "no_saved_roles"
    assert api.get("/api/system/backup/restore").get_json()["restores"] == []


def test_the_dashboard_and_the_cli_offer_to_create_the_missing_roles(
    app, api, run_worker, pagila, pg_server, clerk, request
):
    backup_id = completed_backup(api, run_worker)
    drop_role(pg_server, pagila, clerk)
    htmx = request.getfixturevalue("htmx")  # logs the test client in: API calls are done

    panel = htmx.request("GET", f"/system/backup/{backup_id}/restore",
                         query_string={"target_database": COPY}).get_data(as_text=True)
    assert f"the backup saved {clerk}: tick" in panel
    assert panel.count('name="create_roles" value="on" checked') == 1  # the new-db form
    started = htmx.request("POST", f"/system/backup/{backup_id}/restore", data={
        "mode": "new-database", "target_database": COPY, "create_roles": "on"})
    assert started.status_code == 200, started.get_data(as_text=True)
    run_worker()
    with psycopg.connect(pg_server.url(COPY)) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables "
                             "WHERE tablename = 'clerk_notes'").fetchone()
    assert owner == (clerk,)

    drop_role(pg_server, pg_server.url(COPY), clerk)
    pg_server.drop_database(COPY)
    result = app.test_cli_runner().invoke(args=[
        "backup", "restore", backup_id, "--target-database", COPY, "--create-roles"])
    assert result.exit_code == 0, result.output
    assert "queued new-database restore" in result.output
    run_worker()
    with psycopg.connect(pg_server.url(COPY)) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables "
                             "WHERE tablename = 'clerk_notes'").fetchone()
    assert owner == (clerk,)
