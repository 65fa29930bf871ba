"""flask backup create|list|show|delete, as an operator or cron would use them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.workers import start_worker, worker_env


def test_create_list_show_delete(app, run_worker):
    cli = app.test_cli_runner()
    created = cli.invoke(args=["backup", "create", "--type", "schema-only"])
    assert created.exit_code == 0, created.output
    backup_id = created.output.split()[1]
    run_worker()

    listing = cli.invoke(args=["backup", "list", "--json"])
    backups = json.loads(listing.output)["backups"]
    assert [(b["id"], b["type"], b["status"]) for b in backups] == [
        (backup_id, "schema-only", "completed")]
    assert backup_id in cli.invoke(args=["backup", "list"]).output

    shown = json.loads(cli.invoke(args=["backup", "show", backup_id]).output)
    assert shown["tables"] and all(t["rows"] is None for t in shown["tables"])

    refused = cli.invoke(args=["backup", "delete", backup_id], input="n\n")
    assert refused.exit_code != 0
    assert cli.invoke(args=["backup", "delete", backup_id, "--yes"]).exit_code == 0
    missing = cli.invoke(args=["backup", "show", backup_id])
    assert missing.exit_code != 0 and "no backup" in missing.output


def test_create_wait_returns_when_the_worker_is_done(app, tmp_path):
    worker = start_worker(worker_env(app, tmp_path))
    try:
        result = app.test_cli_runner().invoke(args=["backup", "create", "--wait"])
    finally:
        worker.terminate()
        worker.wait(30)
    assert result.exit_code == 0, result.output
    assert "completed backup-" in result.output
    assert len(list(Path(app.config["BACKUP_DIR"]).glob("*.dump.zst"))) == 1


def test_create_wait_exits_non_zero_when_the_backup_fails(app, pg_server, tmp_path):
    app.config["DATABASE_URL"] = pg_server.url("no_such_database")
    env = worker_env(app, tmp_path)
    worker = start_worker(env)
    try:
        result = app.test_cli_runner().invoke(args=["backup", "create", "--wait"])
    finally:
        worker.terminate()
        worker.wait(30)
    assert result.exit_code == 1
    assert "failed" in result.output and "no_such_database" in result.output


def test_verify_and_restore_from_the_cli(app, tmp_path, pagila, pg_server):
    from tests.support.dbcompare import table_fingerprints

    cli = app.test_cli_runner()
    worker = start_worker(worker_env(app, tmp_path))
    try:
        created = cli.invoke(args=["backup", "create", "--wait"])
        assert created.exit_code == 0, created.output
        backup_id = created.output.split()[1]
        verified = cli.invoke(args=["backup", "verify", backup_id, "--level", "restore",
                                    "--wait"])
        assert verified.exit_code == 0, verified.output
        assert "ok   table public.actor" in verified.output
        assert f"{backup_id} is valid (restore)" in verified.output

        dry = cli.invoke(args=["backup", "restore", backup_id, "--dry-run"])
        assert dry.exit_code == 0 and json.loads(dry.output)["canRestore"] is True
        refused = cli.invoke(args=["backup", "restore", backup_id])
        assert refused.exit_code == 2 and "confirm" in refused.output

        restored = cli.invoke(args=["backup", "restore", backup_id, "--target-database",
                                    "cli_copy", "--wait"])
        assert restored.exit_code == 0, restored.output
        assert "cli_copy matches the backup's manifest" in restored.output
        assert table_fingerprints(pg_server.url("cli_copy")) == table_fingerprints(pagila)
    finally:
        worker.terminate()
        worker.wait(30)
        pg_server.drop_database("cli_copy")
