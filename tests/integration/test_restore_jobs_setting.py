"""RESTORE_JOBS through the API and a real worker: the restore says which mode ran, the
dry run shows the temporary space, and the temporary file is gone afterwards."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pgbackup import restore_jobs
from tests.support.backups import completed_backup, restore
from tests.support.dbcompare import schema_dump, table_fingerprints


@pytest.fixture(autouse=True)
def drop_restored_databases(pg_server):
    yield
    pg_server.drop_database("parallel_copy")


@pytest.fixture
def temp_dir(app, tmp_path: Path) -> Path:
    directory = tmp_path / "restore-temp"
    directory.mkdir()
    app.config["RESTORE_TEMP_DIR"] = str(directory)
    return directory


def test_a_parallel_restore_into_a_new_database_says_so(
    app, api, run_worker, pagila, pg_server, temp_dir
):
    app.config["RESTORE_JOBS"] = 2
    backup_id = completed_backup(api, run_worker)
    before = schema_dump(pagila), table_fingerprints(pagila)

    response = restore(api, backupId=backup_id, targetDatabase="parallel_copy")
    assert response.status_code == 202
    run_worker()

    done = api.get(f"/api/system/backup/restore/{response.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert (result["restoreJobs"], result["restoreMode"]) == (2, "parallel (2 jobs)")
    assert result["matchesManifest"] is True
    copy = pg_server.url("parallel_copy")
    assert (schema_dump(copy), table_fingerprints(copy)) == before
    assert list(temp_dir.iterdir()) == []


def test_auto_restores_a_small_backup_serially(app, api, run_worker, temp_dir, monkeypatch):
    monkeypatch.setattr(restore_jobs, "cpu_count", lambda: 2)
    assert app.config["RESTORE_JOBS"] is None  # auto, the default
    backup_id = completed_backup(api, run_worker)

    response = restore(api, backupId=backup_id, dryRun=True, rehearse=True)
    assert response.status_code == 202
    temp = response.get_json()["analysis"]["disk"]["restoreTemp"]
    assert temp["mode"] == "serial" and temp["fits"] is None
    run_worker()

    rehearsal = response.get_json()["rehearsal"]
    done = api.get(f"/api/system/backup/restore/{rehearsal['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    assert (done["result"]["restoreJobs"], done["result"]["restoreMode"]) == (1, "serial")
    assert "where parallel starts to pay" in done["result"]["restoreModeReason"]


def test_the_dry_run_shows_the_temporary_space(app, api, run_worker, temp_dir):
    app.config["RESTORE_JOBS"] = 2
    backup_id = completed_backup(api, run_worker)

    analysis = restore(api, backupId=backup_id, dryRun=True).get_json()["analysis"]

    temp = analysis["disk"]["restoreTemp"]
    assert (temp["jobs"], temp["directory"], temp["fits"]) == (2, str(temp_dir), True)
    assert temp["bytes"] > 0 and temp["freeBytes"] > temp["bytes"]
    assert analysis["disk"]["notes"][-1].startswith("Restored in parallel (2 jobs)")


def test_a_restore_over_the_database_runs_in_parallel_into_its_replacement(
    app, api, run_worker, pagila, temp_dir
):
    """The replacement is restored in parallel and swapped in only once it matches."""
    app.config["RESTORE_JOBS"] = 2
    backup_id = completed_backup(api, run_worker)
    at_backup = schema_dump(pagila), table_fingerprints(pagila)
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("DELETE FROM payment WHERE payment_id % 3 = 0")

    response = restore(api, backupId=backup_id, confirmDataLoss=True)
    assert response.status_code == 202
    run_worker()

    done = api.get(f"/api/system/backup/restore/{response.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    assert done["result"]["restoreMode"] == "parallel (2 jobs)"
    assert (schema_dump(pagila), table_fingerprints(pagila)) == at_backup
    assert list(temp_dir.iterdir()) == []
