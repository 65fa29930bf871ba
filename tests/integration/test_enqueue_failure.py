"""A job is queued only after its row is committed (a worker that takes it at once must
find the row), so a queue that refuses the job at that point leaves the row to be deleted
again: nothing is left behind, and the next request goes through."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services import backups
from services.extensions import db
from services.models import Backup, BackupCopy, Restore
from tests.support.backups import completed_backup, restore


@pytest.fixture
def refusing_queue(monkeypatch) -> list[str]:
    """Redis answers the admission lock but refuses the job itself; returns the job ids
    that were refused."""
    refused: list[str] = []

    def refuse(queue_name: str, func: str, job_id: str, *args) -> None:
        refused.append(job_id)
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(backups, "_queue_job", refuse)
    return refused


def test_a_refused_backup_job_leaves_no_backup_or_copy(app, api, refusing_queue):
    response = api.post("/api/system/backup", json={"type": "full"})
    assert response.status_code == 503
    assert response.get_json()["error"]["message"].endswith("nothing was created")
    assert len(refusing_queue) == 1
    with app.app_context():
        assert db.session.query(Backup).count() == 0
        assert db.session.query(BackupCopy).count() == 0


def test_a_refused_restore_job_leaves_no_restore_and_frees_its_slot(
        app, api, run_worker, monkeypatch, empty_database):
    backup_id = completed_backup(api, run_worker, type="schema-only")
    real = backups._queue_job

    def refuse_once(queue_name: str, *args) -> None:
        monkeypatch.setattr(backups, "_queue_job", real)
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(backups, "_queue_job", refuse_once)
    name = empty_database.rsplit("/", 1)[1] + "_copy"
    refused = restore(api, backupId=backup_id, targetDatabase=name)
    assert refused.status_code == 503
    assert refused.get_json()["error"]["message"].endswith("nothing was started")
    with app.app_context():
        assert db.session.query(Restore).count() == 0
    # The one-restore-at-a-time slot was given back: the same request now goes through.
    assert restore(api, backupId=backup_id, targetDatabase=name).status_code == 202
