"""Times in the API have one format, RFC 3339 in UTC with milliseconds and ``Z``
(services.json_shapes.iso), and a backup has one created time, wherever it is read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pgbackup import backup_id_time, manifest_name
from services.json_shapes import iso
from tests.support.backups import completed_backup, restore

ONE_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# A value that reads as a time (ISO 8601 in any form, or HTTP's RFC 1123 dates) ...
LOOKS_LIKE_A_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d|^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} ")
# ... and a key that names one (a number there would be an epoch time).
TIME_KEY = re.compile(r"(At|Until|Time)$|^(created|at|moment|earliest|latest)$")
LOCAL_TIMES = {"nextRunLocal"}  # documented: the schedule's next run on its own wall clock


@pytest.fixture(autouse=True)
def drop_restored_database(pg_server):
    yield
    pg_server.drop_database("times_copy")


def times_in(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every value that is, or should be, a time."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in LOCAL_TIMES:
                continue
            if TIME_KEY.search(key) and item is not None and not isinstance(item, (dict, list)):
                yield where, item
            else:
                yield from times_in(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from times_in(item, f"{path}[{index}]")
    elif isinstance(value, str) and LOOKS_LIKE_A_TIME.search(value):
        yield path, value


def test_the_walk_finds_times_in_any_format():
    body = {"a": [{"sentAt": 1765000000}], "b": "Mon, 07 Dec 2026 05:00:00 GMT",
            "c": {"moment": "2026-12-07 05:00:00+00"}, "nextRunLocal": "2026-12-08T03:00:00+01:00",
            "id": "backup-2026-12-07T05-00-00-000Z", "time": "02:00"}
    assert [where for where, _ in times_in(body)] == [".a[0].sentAt", ".b", ".c.moment"]


def test_every_time_the_main_endpoints_answer_has_the_one_format(api, run_worker):
    backup_id = completed_backup(api, run_worker)
    verify = api.post("/api/system/backup/verify", json={"backupId": backup_id})
    run_worker()
    schedule = api.post("/api/system/backup/schedule", json={
        "name": "nightly", "type": "full", "frequency": "daily", "time": "02:00",
        "timezone": "Europe/Berlin"})
    dry_run = restore(api, backupId=backup_id, targetDatabase="times_copy", dryRun=True)
    started = restore(api, backupId=backup_id, targetDatabase="times_copy")
    run_worker()
    restore_id, restore_job = started.get_json()["restoreId"], started.get_json()["jobId"]
    schedule_id = schedule.get_json()["id"]
    answers = {"POST verify": verify, "POST schedule": schedule, "POST dry run": dry_run,
               "POST restore": started}
    for path in ("/api/system/backup", f"/api/system/backup/{backup_id}",
                 "/api/system/jobs", f"/api/system/jobs/{backup_id}",
                 f"/api/system/jobs/{verify.get_json()['jobId']}",
                 f"/api/system/jobs/{restore_job}", "/api/system/backup/restore",
                 f"/api/system/backup/restore/{restore_id}", "/api/system/health",
                 "/api/system/backup/schedule", f"/api/system/backup/schedule/{schedule_id}",
                 "/api/system/backup/retention/preview", "/api/system/activity",
                 "/api/system/destinations", "/api/system/alerts",
                 "/api/system/notifications/deliveries"):
        answers[path] = api.get(path)
    seen = set()
    for name, response in answers.items():
        assert response.status_code in (200, 201, 202), (name, response.get_json())
        for where, value in times_in(response.get_json()):
            seen.add(re.sub(r"^.*\.", "", where))
            assert isinstance(value, str) and ONE_FORMAT.match(value), (name, where, value)
    assert seen >= {  # the walk found the times it is there to check
        "created", "startedAt", "finishedAt", "verifiedAt", "storedAt", "attemptedAt",
        "checkedAt", "enqueuedAt", "endedAt", "nextRunAt", "generatedAt", "at",
        "lastGoodCopyAt"}, seen
    [local] = [item["nextRunLocal"] for item in api.get(
        "/api/system/backup/schedule").get_json()["schedules"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT02:00:00\+0[12]:00", local)  # Berlin's wall clock


def test_a_backup_has_one_created_time_wherever_it_is_read(app, api, run_worker):
    backup_id = completed_backup(api, run_worker)
    created = iso(backup_id_time(backup_id))
    listed = api.get("/api/system/backup").get_json()["backups"][0]
    shown = api.get(f"/api/system/backup/{backup_id}").get_json()
    analysis = restore(api, backupId=backup_id, targetDatabase="times_copy",
                       dryRun=True).get_json()["analysis"]
    manifest = json.loads((Path(app.config["BACKUP_DIR"]) / manifest_name(backup_id)).read_text())
    assert listed["id"] == backup_id
    assert listed["created"] == shown["created"] == analysis["backup"]["created"] == created
    assert iso(datetime.fromisoformat(manifest["created"])) == created
