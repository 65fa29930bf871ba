"""The JSON API, end to end through a real RQ worker, PostgreSQL and pg_dump."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.support.dbcompare import table_fingerprints


def create(api, **body):
    return api.post("/api/system/backup", json=body)


def test_a_full_backup_is_queued_then_completed_by_the_worker(app, api, run_worker, pagila):
    response = create(api, type="full")
    assert response.status_code == 202
    queued = response.get_json()
    assert queued["status"] == "queued"
    assert queued["backupId"].startswith("backup-") and queued["jobId"] == queued["backupId"]

    run_worker()

    backup = api.get(f"/api/system/backup/{queued['backupId']}").get_json()
    assert backup["status"] == "completed", backup["error"]
    assert backup["filename"] == f"{queued['backupId']}.dump.zst"
    artifact = Path(app.config["BACKUP_DIR"]) / backup["filename"]
    assert backup["size"] == artifact.stat().st_size
    assert backup["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert backup["durationMs"] >= 0
    counts = {f"{t['schema']}.{t['name']}": t["rows"] for t in backup["tables"]}
    expected = {name: rows for name, (rows, _) in table_fingerprints(pagila).items()
                if name in counts}
    assert counts == expected and counts["public.actor"] == 200

    job = api.get(f"/api/system/jobs/{queued['jobId']}").get_json()
    assert job["status"] == "completed" and job["rqStatus"] == "finished"
    assert job["progress"]["bytesWritten"] > 0
    assert job["progress"]["tablesDone"] == job["progress"]["tablesTotal"]


def test_the_list_is_newest_first_filterable_and_paginated(api, run_worker):
    ids = [create(api, type=kind).get_json()["backupId"]
           for kind in ("full", "schema-only", "full")]
    run_worker()
    listing = api.get("/api/system/backup").get_json()
    assert [b["id"] for b in listing["backups"]] == ids[::-1]
    assert listing["total"] == 3
    assert listing["totalSize"] == sum(b["size"] for b in listing["backups"])
    assert set(listing["backups"][0]) >= {"id", "filename", "size", "created", "type",
                                          "status", "verification", "durationMs"}
    only_schema = api.get("/api/system/backup?type=schema-only").get_json()
    assert [b["id"] for b in only_schema["backups"]] == [ids[1]]
    page2 = api.get("/api/system/backup?perPage=2&page=2").get_json()
    assert [b["id"] for b in page2["backups"]] == [ids[0]] and page2["total"] == 3
    assert api.get("/api/system/backup?status=failed").get_json()["total"] == 0


def test_uncompressed_backup_is_a_plain_custom_archive(app, api, run_worker):
    backup_id = create(api, type="full", compress=False).get_json()["backupId"]
    run_worker()
    backup = api.get(f"/api/system/backup/{backup_id}").get_json()
    assert backup["compression"] == "none" and backup["filename"].endswith(".dump")
    head = (Path(app.config["BACKUP_DIR"]) / backup["filename"]).read_bytes()[:5]
    assert head == b"PGDMP"


def test_download_streams_the_artifact_as_stored(app, api, run_worker):
    backup_id = create(api).get_json()["backupId"]
    response = api.get(f"/api/system/backup/{backup_id}/download")
    assert response.status_code == 409  # not completed yet
    run_worker()
    response = api.get(f"/api/system/backup/{backup_id}/download")
    assert response.status_code == 200
    stored = Path(app.config["BACKUP_DIR"]) / f"{backup_id}.dump.zst"
    assert response.data == stored.read_bytes()
    assert "attachment" in response.headers["Content-Disposition"]


def test_delete_removes_artifact_and_manifest_but_not_while_queued(app, api, run_worker):
    backup_id = create(api).get_json()["backupId"]
    busy = api.delete(f"/api/system/backup/{backup_id}")
    assert busy.status_code == 409
    assert busy.get_json()["error"]["code"] == "backup_busy"
    run_worker()
    backup_dir = Path(app.config["BACKUP_DIR"])
    assert sorted(p.name for p in backup_dir.iterdir()) == [
        "RESTORE", f"{backup_id}.dump.zst", f"{backup_id}.globals.json.zst",
        f"{backup_id}.manifest.json"]
    assert api.delete(f"/api/system/backup/{backup_id}").status_code == 200
    assert [p.name for p in backup_dir.iterdir()] == ["RESTORE"]  # the recovery kit stays
    assert api.get(f"/api/system/backup/{backup_id}").status_code == 404


def test_a_failed_dump_is_recorded_with_pg_dumps_error(app, api, run_worker, pg_server):
    app.config["DATABASE_URL"] = pg_server.url("no_such_database")
    backup_id = create(api).get_json()["backupId"]
    run_worker()
    backup = api.get(f"/api/system/backup/{backup_id}").get_json()
    assert backup["status"] == "failed"
    assert "no_such_database" in backup["error"]
    assert list(Path(app.config["BACKUP_DIR"]).glob("*")) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": "differential"}, "type"),
        ({"type": "incremental", "includeData": False}, "contradicts"),
        ({"type": "full", "compress": "yes"}, "compress"),
        ({"type": "full", "includeData": False}, "contradicts"),
        ({"type": "schema-only", "includeData": True}, "contradicts"),
        ({"type": "full", "surprise": 1}, "surprise"),
        ([], "JSON object"),
    ],
)
def test_bad_create_requests_get_a_clear_400(api, body, fragment):
    response = api.post("/api/system/backup", json=body)
    assert response.status_code == 400
    assert fragment in response.get_json()["error"]["message"]


def test_malformed_json_and_bad_ids_are_4xx_json(api):
    response = api.post("/api/system/backup", data="{not json",
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    for path in ("/api/system/backup/..", "/api/system/backup/backup-x",
                 "/api/system/backup/%2E%2E%2Fetc"):
        response = api.get(path)
        assert 400 <= response.status_code < 500, path
        assert "error" in response.get_json()
    response = api.get("/api/system/backup/..%2Fetc%2Fpasswd/download")
    assert 400 <= response.status_code < 500
    assert api.get("/api/system/backup?perPage=0").status_code == 400
    assert api.get("/api/system/backup?type=weird").status_code == 400
    assert api.get("/api/system/jobs/no$such").status_code == 404  # not a job id: no route
    assert api.get("/api/system/jobs/nosuchjob").status_code == 404


def test_redis_down_creates_nothing(app, api):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("redis", None)
    response = create(api)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "queue_unavailable"
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    assert api.get("/api/system/backup").get_json()["total"] == 0


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_openapi_document_describes_every_api_route(app, api):
    document = api.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, item in document["paths"].items()
                  for method in item}
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + camel(m.group(1)) + "}", rule.rule),
         method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/system")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == documented
    json.dumps(document)
