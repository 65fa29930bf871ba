"""Incremental backups through the API and a real worker: a full starts a chain, each
incremental continues it, a DDL statement or a lost slot starts a new chain with a full
(the reason on the backup), and a restore over the database ends the chain it replaced.
The incrementals are replayed with stock zstd | psql onto the full and compared with the
source."""

from __future__ import annotations

import secrets
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgbackup import ConnectionInfo
from pgbackup.slots import list_slots
from services.capture_slots import SLOT_PREFIX
from tests.engine.helpers import copy_public_schema_owner
from tests.support.backups import backed_up, restore
from tests.support.capture import write
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer

BACKUP = "/api/system/backup"


@pytest.fixture(autouse=True)
def capture_on(capture: str, pg_server: PostgresServer) -> Iterator[None]:
    """Change capture on (see the ``capture`` fixture); the copies restored go too."""
    yield
    pg_server.drop_database("chain_copy")


def slots_of(url: str) -> list[str]:
    return [slot.name for slot in list_slots(ConnectionInfo.from_url(url), SLOT_PREFIX)
            if slot.database == url.rsplit("/", 1)[1]]


def test_a_chain_of_incrementals_replays_to_the_source(
        api, app, run_worker, pagila, pg_server):
    full = backed_up(api, run_worker)
    assert full["capture"]["slot"] == "pgbackup_" + full["id"].lower().replace("-", "_")
    assert full["captureNote"] is None
    write(pagila, "UPDATE rental SET return_date = now() WHERE rental_id <= 100",
          "DELETE FROM payment WHERE payment_id IN (SELECT payment_id FROM payment LIMIT 5)",
          "INSERT INTO actor (first_name, last_name) VALUES ('NEW', 'ACTOR')")
    first = backed_up(api, run_worker, type="incremental")
    write(pagila, "UPDATE customer SET active = 0 WHERE customer_id < 10")
    second = backed_up(api, run_worker, type="incremental")

    assert (first["type"], first["parentId"]) == ("incremental", full["id"])
    assert (second["type"], second["parentId"]) == ("incremental", first["id"])
    assert first["capture"]["startLsn"] == full["capture"]["endLsn"]
    assert second["capture"]["startLsn"] == first["capture"]["endLsn"]
    assert first["filename"].endswith(".sql.zst")
    with app.app_context():  # the counts the dashboard shows, recorded from the manifest
        from services.extensions import db
        from services.models import Backup

        recorded = db.session.get(Backup, first["id"])
        assert (recorded.transactions, recorded.changes) == (3, 100 + 5 + 1)
    assert first["verification"] == second["verification"] == "valid"  # the automatic check
    chain_check = {c["name"]: c for c in second["verificationResult"]["checks"]}["chain"]
    assert chain_check["ok"]
    assert chain_check["detail"].startswith(f"3 backups from full {full['id']}")
    assert slots_of(pagila) == [second["capture"]["slot"]]  # taken over: the others dropped

    copy = pg_server.create_database("chain_copy")
    backups = Path(app.config["BACKUP_DIR"])
    tools = "set -o pipefail; "
    for backup in (full, first, second):
        artifact = shlex.quote(str(backups / backup["filename"]))
        if backup["type"] == "full":
            tools += f"zstd -dc {artifact} | pg_restore --no-owner -d {shlex.quote(copy)}; "
        else:
            tools += f"zstd -dc {artifact} | psql -X -q -v ON_ERROR_STOP=1 -d {copy}; "
    result = subprocess.run(["bash", "-e", "-c", tools], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    copy_public_schema_owner(pagila, copy)  # what --no-owner leaves out (see the helper)
    assert schema_dump(copy) == schema_dump(pagila)
    assert table_fingerprints(copy) == table_fingerprints(pagila)


def test_an_incremental_without_a_chain_starts_one_with_a_full(api, run_worker, pagila):
    backup = backed_up(api, run_worker, type="incremental")
    assert backup["type"] == "full" and backup["parentId"] is None
    assert backup["captureNote"] == ("started a new chain with a full backup: no chain to "
                                     "continue: no completed backup with change capture yet")
    assert backup["capture"] is not None


def test_a_schema_change_starts_a_new_chain(api, run_worker, pagila):
    full = backed_up(api, run_worker)
    write(pagila, "ALTER TABLE actor ADD COLUMN nickname text")
    backup = backed_up(api, run_worker, type="incremental")
    assert backup["type"] == "full" and backup["parentId"] is None
    assert "schema changed since backup " + full["id"] in backup["captureNote"]
    assert slots_of(pagila) == [backup["capture"]["slot"]]


def test_without_capture_a_full_still_works_and_says_why(api, app, run_worker, pagila):
    app.config["CHANGE_CAPTURE"] = False
    backup = backed_up(api, run_worker)
    assert backup["capture"] is None
    assert backup["captureNote"] == ("no chain started: change capture is off "
                                     "(CHANGE_CAPTURE=false)")


def test_a_restore_over_the_database_ends_the_chain_it_replaced(
        api, run_worker, pagila, pg_server):
    full = backed_up(api, run_worker)
    started = restore(api, backupId=full["id"], confirmDataLoss=True)
    assert started.status_code == 202, started.get_json()
    run_worker()
    done = api.get(f"{BACKUP}/restore/{started.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    assert not done["result"]["warnings"] or all(
        "could not be dropped" not in warning for warning in done["result"]["warnings"])
    assert slots_of(pagila) == []  # the replaced database's slot went with it
    backup = backed_up(api, run_worker, type="incremental")
    assert backup["type"] == "full"
    assert "is gone" in backup["captureNote"]


def test_the_dashboard_shows_a_chain_and_why_a_backup_starts_none(app, htmx, run_worker,
                                                                   pagila):
    htmx.create("incremental")  # no chain yet: a full that starts one, saying why
    run_worker()
    write(pagila, "UPDATE film SET rental_rate = rental_rate + 1 WHERE film_id < 5")
    htmx.create("incremental")
    run_worker()
    with app.app_context():
        from services.extensions import db
        from services.models import Backup

        full, incremental = db.session.query(Backup).order_by(Backup.created_at).all()
    listing = "".join(htmx.request("GET", f"/system/backup/backups/{backup.id}").get_data(
        as_text=True) for backup in (full, incremental))  # their details
    assert "started a new chain with a full backup: no chain to continue" in listing
    assert f"<dd>{full.id}</dd>" in listing  # the incremental's "After"
    assert listing.count("Restorable up to (UTC)") == 2
    assert incremental.type == "incremental" and incremental.parent_id == full.id


def test_the_cli_restores_a_point_in_time(app, api, run_worker, pagila, pg_server):
    backed_up(api, run_worker)
    write(pagila, "DELETE FROM payment WHERE payment_id IN (SELECT payment_id FROM payment "
                  "ORDER BY payment_id LIMIT 3)")
    with psycopg.connect(pagila) as pg:
        moment = pg.execute("SELECT clock_timestamp()").fetchone()[0].isoformat()
    state = table_fingerprints(pagila)
    write(pagila, "DELETE FROM rental WHERE rental_id NOT IN (SELECT rental_id FROM payment)")
    backed_up(api, run_worker, type="incremental")
    runner = app.test_cli_runner()

    missing = runner.invoke(args=["backup", "restore", "--target-database", "chain_copy"])
    assert missing.exit_code == 2 and "pointInTime" in missing.output
    dry = runner.invoke(args=["backup", "restore", "--point-in-time", moment, "--dry-run",
                              "--target-database", "chain_copy"])
    assert dry.exit_code == 0, dry.output
    assert '"window"' in dry.output and '"chain"' in dry.output
    started = runner.invoke(args=["backup", "restore", "--point-in-time", moment,
                                  "--target-database", "chain_copy"])
    assert started.exit_code == 0, started.output
    assert f"at {moment}" in started.output
    run_worker()
    assert table_fingerprints(pg_server.url("chain_copy")) == state


def test_a_gap_in_a_chain_makes_its_incremental_corrupted(api, app, run_worker, pagila):
    backed_up(api, run_worker)
    write(pagila, "UPDATE actor SET first_name = 'X' WHERE actor_id = 1")
    incremental = backed_up(api, run_worker, type="incremental")
    with app.app_context():
        from services.extensions import db
        from services.models import Backup

        db.session.get(Backup, incremental["id"]).start_lsn = "0/1"  # a gap before it
        db.session.commit()
    assert api.post(f"{BACKUP}/verify", json={"backupId": incremental["id"]}
                    ).status_code == 202
    run_worker()
    checked = api.get(f"{BACKUP}/{incremental['id']}").get_json()
    assert checked["verification"] == "corrupted"
    chain = {c["name"]: c for c in checked["verificationResult"]["checks"]}["chain"]
    assert not chain["ok"] and "starts at LSN 0/1" in chain["detail"]


def test_no_chain_to_restore_from_says_why_and_the_fix(api, app, pg_server, pagila):
    role = f"nocapture_{secrets.token_hex(4)}"
    with pg_server.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:  # the protected database reached by a role without REPLICATION
        app.config["DATABASE_URL"] = pagila.replace("postgres@", f"{role}@", 1)
        refused = restore(api, pointInTime="2026-01-01T00:00:00Z", dryRun=True,
                          targetDatabase="chain_copy")
    finally:
        with pg_server.connect() as conn:
            conn.execute(f"DROP ROLE {role}")
    assert refused.status_code == 409
    message = refused.get_json()["error"]["message"]
    assert "no chain yet: take a full backup with change capture on" in message
    assert f"ALTER ROLE {role} REPLICATION" in message


def test_a_chain_s_dry_run_counts_the_rows_the_restore_leaves(api, run_worker, pagila):
    backed_up(api, run_worker)
    write(pagila, "INSERT INTO actor (first_name, last_name) SELECT 'A', 'B' "
                  "FROM generate_series(1, 5)")
    with psycopg.connect(pagila) as pg:
        moment = pg.execute("SELECT clock_timestamp()").fetchone()[0].isoformat()
    write(pagila, "INSERT INTO actor (first_name, last_name) VALUES ('C', 'D')")
    incremental = backed_up(api, run_worker, type="incremental")

    def actor(analysis: dict) -> dict:
        return next(c for c in analysis["changes"]["replaced"] if c["table"] == "public.actor")

    whole = restore(api, backupId=incremental["id"], dryRun=True).get_json()["analysis"]
    assert (actor(whole)["rowsBefore"], actor(whole)["rowsAfter"]) == (206, 206)
    assert not any("fewer rows" in warning for warning in whole["warnings"])
    at_moment = restore(api, pointInTime=moment, dryRun=True).get_json()["analysis"]
    assert actor(at_moment)["rowsAfter"] is None  # replayed up to the moment: not recorded
    assert not any("public.actor" in warning and "fewer rows" in warning
                   for warning in at_moment["warnings"])


def test_the_dry_run_names_the_tables_without_a_key(api, run_worker, pagila):
    write(pagila, "CREATE TABLE visits (at timestamptz, note text)")
    backed_up(api, run_worker)
    write(pagila, "INSERT INTO visits VALUES (now(), 'walk-in')")
    incremental = backed_up(api, run_worker, type="incremental")
    analysis = restore(api, backupId=incremental["id"], dryRun=True,
                       targetDatabase="chain_copy").get_json()["analysis"]
    assert ("1 table(s) without a primary key or replica identity changed: the incrementals "
            "hold them whole, as they were at the end of each one: public.visits.") in \
        analysis["warnings"]


def test_a_chain_found_again_by_rescan_restores_to_a_point_in_time(
        api, app, run_worker, pagila):
    full = backed_up(api, run_worker)
    write(pagila, "UPDATE actor SET last_name = 'RESCANNED' WHERE actor_id = 7")
    incremental = backed_up(api, run_worker, type="incremental")
    with app.app_context():
        from services import rescan
        from services.extensions import db
        from services.models import Backup

        for backup_id in (incremental["id"], full["id"]):  # the catalog lost them
            db.session.delete(db.session.get(Backup, backup_id))
        db.session.commit()
        report = rescan.rescan("local")
    assert sorted(report.imported) == sorted([full["id"], incremental["id"]])
    found = api.get(f"{BACKUP}/{incremental['id']}").get_json()
    assert found["parentId"] == full["id"] and found["capture"] == incremental["capture"]
    analysis = restore(api, pointInTime=incremental["capture"]["coversUntil"], dryRun=True,
                       targetDatabase="chain_copy").get_json()["analysis"]
    assert [link["backupId"] for link in analysis["chain"]] == [full["id"], incremental["id"]]


def test_an_hourly_incremental_schedule_starts_a_chain_then_continues_it(
        api, run_worker, pagila):
    created = api.post("/api/system/backup/schedule", json={
        "name": "hourly", "type": "incremental", "frequency": "hourly", "time": "00:15",
        "retention": 7, "keepAtLeast": 1})
    assert created.status_code == 201, created.get_json()
    schedule_id = created.get_json()["id"]
    kinds = []
    for statement in ("UPDATE film SET length = length + 1 WHERE film_id = 1",
                      "UPDATE film SET length = length + 1 WHERE film_id = 2"):
        run = api.post(f"{BACKUP}/schedule/{schedule_id}/run").get_json()
        run_worker()
        backup = api.get(f"{BACKUP}/{run['backupId']}").get_json()
        assert backup["status"] == "completed", backup["error"]
        kinds.append(backup["type"])
        write(pagila, statement)
    assert kinds == ["full", "incremental"]  # no chain at first: a full starts one


def test_a_chain_whose_last_backup_is_gone_starts_again(api, app, run_worker, pagila):
    full = backed_up(api, run_worker)
    for path in Path(app.config["BACKUP_DIR"]).glob(f"{full['id']}.*"):
        path.unlink()  # the disk lost the chain's only copy
    backup = backed_up(api, run_worker, type="incremental")
    assert backup["type"] == "full" and backup["parentId"] is None
    assert backup["captureNote"].startswith(
        f"started a new chain with a full backup: the chain's last backup {full['id']} "
        "cannot be read: ")
