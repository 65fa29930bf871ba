"""Verification and restore through the API and a real worker: nothing lost, nothing
overwritten by accident."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import psycopg
import pytest
from sqlalchemy import select

from pgbackup import backup_lock, restore_lock
from pgbackup.connection import ConnectionInfo
from services import restores
from services.extensions import db
from services.models import Restore
from tests.support.backups import completed_backup, restore
from tests.support.dbcompare import schema_dump, table_fingerprints


@pytest.fixture(autouse=True)
def drop_restored_databases(pg_server):
    """Databases the tests restore into are dropped afterwards, pass or fail."""
    yield
    for name in ("pagila_copy", "first_copy", "second_copy", "without_clerk", "from_corrupt"):
        pg_server.drop_database(name)


def change_the_database(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM payment WHERE payment_id % 3 = 0")
        conn.execute("UPDATE actor SET first_name = 'CHANGED' WHERE actor_id < 50")
        conn.execute("CREATE TABLE after_backup (id int)")
        conn.execute("DROP TABLE film_actor CASCADE")


def test_new_backups_are_verified_at_integrity_level(api, run_worker):
    backup_id = completed_backup(api, run_worker)  # the burst worker also runs the check
    backup = api.get(f"/api/system/backup/{backup_id}").get_json()
    assert backup["verification"] == "valid"
    result = backup["verificationResult"]
    assert result["isValid"] and result["level"] == "integrity"
    assert {check["name"] for check in result["checks"]} >= {"sha256", "decompress", "toc"}


def test_restore_level_verification_compares_every_table(api, run_worker, pg_server):
    backup_id = completed_backup(api, run_worker)
    response = api.post("/api/system/backup/verify", json={"backupId": backup_id,
                                                          "level": "restore"})
    assert response.status_code == 202
    job_id = response.get_json()["jobId"]
    run_worker()
    backup = api.get(f"/api/system/backup/{backup_id}").get_json()
    assert backup["verification"] == "valid"
    checks = backup["verificationResult"]["checks"]
    assert any("public.actor" in check["detail"] for check in checks)
    assert all(check["ok"] for check in checks)
    assert api.get(f"/api/system/jobs/{job_id}").get_json()["status"] == "completed"
    with pg_server.connect() as conn:
        scratch = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgbackup_%'").fetchone()[0]
    assert scratch == 0


def test_a_flipped_byte_makes_the_backup_corrupted_and_unrestorable(app, api, run_worker):
    backup_id = completed_backup(api, run_worker)
    artifact = Path(app.config["BACKUP_DIR"]) / f"{backup_id}.dump.zst"
    data = bytearray(artifact.read_bytes())
    offset = random.Random(7).randrange(len(data))
    data[offset] ^= 0xFF
    artifact.write_bytes(bytes(data))
    api.post("/api/system/backup/verify", json={"backupId": backup_id})
    run_worker()
    backup = api.get(f"/api/system/backup/{backup_id}").get_json()
    assert backup["verification"] == "corrupted"
    checks = {c["name"]: c["ok"] for c in backup["verificationResult"]["checks"]}
    assert checks["sha256"] is False

    started = restore(api, backupId=backup_id, targetDatabase="from_corrupt")
    assert started.status_code == 202
    run_worker()
    failed = api.get(f"/api/system/backup/restore/{started.get_json()['restoreId']}").get_json()
    assert failed["status"] == "failed" and "integrity" in failed["error"]


def test_restore_into_a_new_database_equals_the_source(api, run_worker, pagila, pg_server):
    backup_id = completed_backup(api, run_worker)
    before = schema_dump(pagila), table_fingerprints(pagila)
    response = restore(api, backupId=backup_id, targetDatabase="pagila_copy")
    assert response.status_code == 202
    restore_id = response.get_json()["restoreId"]
    run_worker()
    done = api.get(f"/api/system/backup/restore/{restore_id}").get_json()
    assert done["status"] == "completed", done["error"]
    assert done["result"]["matchesManifest"] is True
    copy = pg_server.url("pagila_copy")
    assert (schema_dump(copy), table_fingerprints(copy)) == before


def test_restore_over_a_changed_database_brings_back_the_backup_state(
    app, api, run_worker, pagila, pg_server
):
    backup_id = completed_backup(api, run_worker)
    at_backup = schema_dump(pagila), table_fingerprints(pagila)
    change_the_database(pagila)
    changed = schema_dump(pagila), table_fingerprints(pagila)
    assert changed != at_backup

    refused = restore(api, backupId=backup_id)
    assert refused.status_code == 400
    assert "confirmDataLoss" in refused.get_json()["error"]["message"]

    response = restore(api, backupId=backup_id, confirmDataLoss=True)
    assert response.status_code == 202
    run_worker()
    done = api.get(f"/api/system/backup/restore/{response.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    # The job is the restore's, not the safety backup's that shares its id.
    job = api.get(f"/api/system/jobs/{done['jobId']}").get_json()
    assert (job["kind"], job["restoreId"]) == ("restore", done["restoreId"])
    assert (schema_dump(pagila), table_fingerprints(pagila)) == at_backup
    with app.app_context():  # the swap was named beforehand; the copy is live, the old gone
        row = db.session.get(Restore, done["restoreId"])
        names = row.replacement_database, row.retired_database
    assert names[0].startswith(pagila.rsplit("/", 1)[1] + "_restore_")
    assert "_replaced_" in names[1]
    with pg_server.connect() as conn:
        assert conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                            [list(names)]).fetchall() == []

    safety = api.get(f"/api/system/backup/{done['safetyBackupId']}").get_json()
    assert safety["status"] == "completed" and safety["origin"] == "safety"
    safety_tables = {f"{t['schema']}.{t['name']}": t["rows"] for t in safety["tables"]}
    assert "public.after_backup" in safety_tables and "public.film_actor" not in safety_tables
    assert safety["verification"] == "valid"  # every completed backup gets its check


def test_dry_run_changes_nothing_and_reports_the_changes(api, run_worker, pagila):
    backup_id = completed_backup(api, run_worker)
    change_the_database(pagila)
    before = schema_dump(pagila), table_fingerprints(pagila)
    response = restore(api, backupId=backup_id, dryRun=True)
    assert response.status_code == 200
    analysis = response.get_json()["analysis"]
    assert (schema_dump(pagila), table_fingerprints(pagila)) == before
    assert analysis["canRestore"] is True
    changes = analysis["changes"]
    assert "public.after_backup" in str(changes["dropped"])
    assert "public.film_actor" in str(changes["created"])
    payment_delta = [t for t in changes["replaced"] if "payment_p2022_02" in str(t)]
    assert payment_delta and payment_delta[0]["delta"] > 0
    assert api.get("/api/system/backup/restore").get_json()["restores"] == []


def test_rehearsal_restores_into_a_scratch_database_and_drops_it(api, run_worker, pg_server):
    backup_id = completed_backup(api, run_worker)
    response = restore(api, backupId=backup_id, dryRun=True, rehearse=True)
    assert response.status_code == 202
    rehearsal = response.get_json()["rehearsal"]
    run_worker()
    done = api.get(f"/api/system/backup/restore/{rehearsal['restoreId']}").get_json()
    assert done["status"] == "completed" and done["result"]["matchesManifest"]
    with pg_server.connect() as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            [done["result"]["database"]]).fetchone() is None


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"targetDatabase": "pagila_template"}, 409, "already exists"),
        ({"targetDatabase": "bad name;"}, 400, "targetDatabase"),
        ({"targetDatabase": "x", "confirmDataLoss": True}, 400, "loses no data"),
        ({"rehearse": True}, 400, "rehearse goes with dryRun"),
        ({}, 400, "confirmDataLoss"),
    ],
)
def test_bad_restore_requests_are_refused(api, run_worker, body, status, fragment):
    backup_id = completed_backup(api, run_worker)
    response = restore(api, backupId=backup_id, **body)
    assert response.status_code == status
    assert fragment in response.get_json()["error"]["message"]
    assert api.get("/api/system/backup/restore").get_json()["restores"] == []


def test_a_restore_never_overlaps_a_backup_or_another_restore(app, api, run_worker, pagila):
    backup_id = completed_backup(api, run_worker)
    first = restore(api, backupId=backup_id, targetDatabase="first_copy")
    assert first.status_code == 202
    second = restore(api, backupId=backup_id, targetDatabase="second_copy")
    assert second.status_code == 409 and second.get_json()["error"]["code"] == "restore_running"
    run_worker()

    overwrite = restore(api, backupId=backup_id, confirmDataLoss=True).get_json()
    blocked = api.post("/api/system/backup", json={"type": "full"})
    assert blocked.status_code == 409 and blocked.get_json()["error"]["code"] == "restore_running"
    server = ConnectionInfo.from_url(pagila)
    with backup_lock(server, server.dbname):  # a backup from elsewhere holds the database
        run_worker()
    failed = api.get(f"/api/system/backup/restore/{overwrite['restoreId']}").get_json()
    assert failed["status"] == "failed" and "backup" in failed["error"]

    queued = api.post("/api/system/backup", json={"type": "full"}).get_json()
    with restore_lock(server, server.dbname):
        run_worker()
    backup = api.get(f"/api/system/backup/{queued['backupId']}").get_json()
    assert backup["status"] == "failed" and "restore" in backup["error"]


def test_of_racing_restore_requests_exactly_one_starts(app, api, run_worker, pagila):
    """The check for an active restore and the insert of a new one are separate steps. The
    admission lock (tested in tests/faults/test_concurrency.py) serialises them; behind it,
    the unique active slot decides between requests that passed the check together."""
    backup_id = completed_backup(api, run_worker)
    passed_the_check = threading.Barrier(4)

    def slow_check(original=restores._refuse_concurrent_restore):
        original()
        passed_the_check.wait(timeout=30)

    without_the_lock = mock.patch.object(restores, "admitted", lambda _: nullcontext())
    with ThreadPoolExecutor(4) as pool, without_the_lock, mock.patch.object(
            restores, "_refuse_concurrent_restore", slow_check):
        answers = list(pool.map(lambda _: restore(api, backupId=backup_id,
                                                  confirmDataLoss=True), range(4)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [202, 409, 409, 409]
    assert {a.get_json()["error"]["code"] for a in answers if a.status_code == 409} == {
        "restore_running"}
    run_worker()
    with app.app_context():
        [row] = db.session.scalars(select(Restore)).all()
        assert row.status == "completed" and row.active_slot is None
    assert restore(api, backupId=backup_id, targetDatabase="pagila_copy").status_code == 202


def test_a_role_missing_on_the_target_is_warned_about_and_skipped(
    api, run_worker, pagila, pg_server
):
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("CREATE ROLE shop_clerk")
        conn.execute("CREATE TABLE clerk_notes (note text)")
        conn.execute("INSERT INTO clerk_notes VALUES ('hello')")
        conn.execute("ALTER TABLE clerk_notes OWNER TO shop_clerk")
        conn.execute("GRANT SELECT ON actor TO shop_clerk")
    backup_id = completed_backup(api, run_worker)
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("DROP TABLE clerk_notes")
        conn.execute("REVOKE ALL ON actor FROM shop_clerk")
        conn.execute("DROP ROLE shop_clerk")

    analysis = restore(api, backupId=backup_id, dryRun=True,
                       targetDatabase="without_clerk").get_json()["analysis"]
    assert any("shop_clerk" in warning for warning in analysis["warnings"])

    response = restore(api, backupId=backup_id, targetDatabase="without_clerk")
    run_worker()
    done = api.get(f"/api/system/backup/restore/{response.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    assert done["result"]["skippedRoles"] == ["shop_clerk"]
    copy = pg_server.url("without_clerk")
    with psycopg.connect(copy) as conn:
        assert conn.execute("SELECT note FROM clerk_notes").fetchone() == ("hello",)
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = "
                             "'clerk_notes'").fetchone()[0]
    assert owner == "postgres"


def test_a_restore_interrupted_after_the_swap_is_completed_not_failed(
    api, run_worker, pagila, pg_server, monkeypatch
):
    """A stopping worker can interrupt the job anywhere, e.g. while it drops the replaced
    database: the live database holds the checked restore by then, and must be reported so."""
    import jobs.restore
    from jobs.worker import WorkerStopped

    backup_id = completed_backup(api, run_worker)
    at_backup = table_fingerprints(pagila)
    change_the_database(pagila)

    def interrupted(server, name):
        raise WorkerStopped("interrupted: its worker is shutting down")

    monkeypatch.setattr(jobs.restore, "drop_database", interrupted)
    response = restore(api, backupId=backup_id, confirmDataLoss=True)
    run_worker()
    done = api.get(f"/api/system/backup/restore/{response.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    assert table_fingerprints(pagila) == at_backup
    [warning] = done["result"]["warnings"]
    assert "stopped after the swap (interrupted" in warning
    pg_server.drop_database(warning.split("kept as ")[1].split()[0])


def test_a_replaced_database_that_cannot_be_dropped_is_a_warning_not_a_failure(
    api, run_worker, pagila, pg_server, monkeypatch
):
    import jobs.restore

    backup_id = completed_backup(api, run_worker)
    at_backup = table_fingerprints(pagila)
    change_the_database(pagila)

    def refuse(server, name):
        raise psycopg.errors.ObjectInUse(f"database {name} is being used")

    monkeypatch.setattr(jobs.restore, "drop_database", refuse)
    response = restore(api, backupId=backup_id, confirmDataLoss=True)
    run_worker()
    done = api.get(f"/api/system/backup/restore/{response.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    assert table_fingerprints(pagila) == at_backup
    [warning] = [w for w in done["result"]["warnings"] if "could not be dropped" in w]
    replaced = warning.split()[3]
    assert replaced.endswith(tuple("0123456789")) and "_replaced_" in replaced
    pg_server.drop_database(replaced)


def test_a_refused_swap_leaves_the_database_and_no_copy_behind(
    app, api, run_worker, pagila, pg_server, monkeypatch
):
    import jobs.restore

    backup_id = completed_backup(api, run_worker)
    change_the_database(pagila)
    changed = schema_dump(pagila), table_fingerprints(pagila)

    def refuse(*_args, **_kwargs):
        raise TimeoutError("sessions on the database did not end")

    monkeypatch.setattr(jobs.restore, "swap_databases", refuse)
    response = restore(api, backupId=backup_id, confirmDataLoss=True)
    run_worker()
    done = api.get(f"/api/system/backup/restore/{response.get_json()['restoreId']}").get_json()
    assert done["status"] == "failed" and "did not end" in done["error"]
    assert (schema_dump(pagila), table_fingerprints(pagila)) == changed
    with pg_server.connect() as conn:
        copies = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                              [pagila.rsplit("/", 1)[1] + "_restore_%"]).fetchall()
    assert copies == []
