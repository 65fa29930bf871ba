"""Backups and restores through the API with a real worker, for the integration tests."""

from __future__ import annotations

BACKUP = "/api/system/backup"


def backed_up(api, run_worker, **body) -> dict:
    """A completed backup (full unless ``type`` says otherwise), as the API shows it."""
    backup_id = api.post(BACKUP, json={"type": "full", **body}).get_json()["backupId"]
    run_worker()
    backup = api.get(f"{BACKUP}/{backup_id}").get_json()
    assert backup["status"] == "completed", backup["error"]
    return backup


def completed_backup(api, run_worker, **body) -> str:
    """The id of a completed backup (see backed_up)."""
    return backed_up(api, run_worker, **body)["id"]


def restore(api, **body):
    return api.post(f"{BACKUP}/restore", json=body)
