"""With Redis down, every refusal names where Redis should be and what to do, in the same
words, without redis-py's "Error 111 connecting to ..." and without REDIS_URL's password."""

from __future__ import annotations

import logging

import pytest

from pgbackup import artifact_name, new_backup_id
from services.extensions import db
from services.models import Backup, utcnow
from tools.localservices import free_port

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


PASSWORD = "s3cret-redis-pass"


@pytest.fixture
def redis_down(app) -> str:
    """REDIS_URL (with a password) pointing at a closed port; returns the expected sentence."""
    port = free_port()
    app.config["REDIS_URL"] = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    app.extensions.pop("redis", None)
    return (f"Redis at 127.0.0.1:{port} is unreachable (Connection refused); start it or "
            "check REDIS_URL")


def refusal(response) -> str:
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "queue_unavailable"
    assert PASSWORD not in error["message"] and "Error 111" not in error["message"]
    return error["message"]


def test_every_refusal_says_the_same_sentence(app, api, redis_down):
    assert refusal(api.post("/api/system/backup", json={"type": "full"})) == (
        f"{redis_down}; nothing was created")
    assert refusal(api.get("/api/system/jobs/some-job")) == redis_down

    backup_id = new_backup_id()
    with app.app_context():
        db.session.add(Backup(id=backup_id, database="pagila", type="full", status="completed",
                              filename=artifact_name(backup_id, compressed=True),
                              finished_at=utcnow()))
        db.session.commit()
    verify = api.post("/api/system/backup/verify", json={"backupId": backup_id})
    assert refusal(verify) == f"{redis_down}; nothing was started"


def test_health_and_the_schedule_sync_say_it_too(app, api, redis_down, caplog):
    checks = {check["name"]: check for check in api.get("/api/system/health").get_json()[
        "checks"]}
    assert checks["redis"]["status"] == "critical"
    assert checks["redis"]["reason"].startswith(f"{redis_down}. No backup, restore or")
    assert PASSWORD not in checks["redis"]["reason"]

    with caplog.at_level(logging.WARNING):
        created = api.post("/api/system/backup/schedule", json={
            "name": "nightly", "frequency": "daily", "time": "02:00"})
    assert created.status_code == 201
    assert f"{redis_down}; the scheduler will register schedules later" in caplog.text
