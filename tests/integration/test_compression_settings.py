"""ZSTD_LEVEL and ZSTD_THREADS reach the backup the worker takes."""

from __future__ import annotations

from pathlib import Path

from pgbackup import LocalStorage, read_manifest


def test_the_configured_level_compresses_the_workers_backup(app, api, run_worker):
    app.config.update(ZSTD_LEVEL=9, ZSTD_THREADS=0)
    backup_id = api.post("/api/system/backup", json={"type": "full"}).get_json()["backupId"]
    run_worker()
    backup = api.get(f"/api/system/backup/{backup_id}").get_json()
    assert backup["status"] == "completed", backup["error"]
    manifest = read_manifest(LocalStorage(Path(app.config["BACKUP_DIR"])), backup_id)
    assert (manifest.compression, manifest.compression_level) == ("zstd", 9)
