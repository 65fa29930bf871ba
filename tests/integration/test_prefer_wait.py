"""``Prefer: wait=N`` (RFC 7240) on create, verify and restore, with a real `rq worker`
process doing the jobs while the request waits: the final result in 200 when the job ends
in time, the usual 202 otherwise, and a preference that cannot be understood ignored."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from blueprints.api.backups import finished_verification
from blueprints.api.prefer import MAX_WAIT, requested_wait
from services.job_wait import Ended, ended_within
from tests.support.backups import completed_backup
from tests.support.workers import install_gated_pg_dump

BACKUP = "/api/system/backup"
RESTORED = "prefer_wait_copy"


def wait(seconds: int | str) -> dict[str, str]:
    return {"Prefer": f"wait={seconds}"}


@pytest.fixture
def drop_restored(pg_server):
    yield
    pg_server.drop_database(RESTORED)


def test_create_verify_and_restore_answer_their_final_result(
        app, api, worker, pg_server, drop_restored):
    created = api.post(BACKUP, json={"type": "full"}, headers=wait(30))
    assert created.status_code == 200, created.get_json()
    assert created.headers["Preference-Applied"] == "wait=30"
    body = created.get_json()
    backup_id = body["backupId"]
    assert body["status"] == "completed" and body["jobId"] == backup_id
    backup = body["backup"]
    assert backup == api.get(f"{BACKUP}/{backup_id}").get_json() | {
        "verification": backup["verification"], "verifiedAt": backup["verifiedAt"],
        "verificationResult": backup["verificationResult"]}  # the automatic check may be done
    artifact = Path(app.config["BACKUP_DIR"]) / backup["filename"]
    assert backup["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    film = next(table for table in backup["tables"] if table["name"] == "film")
    assert film["rows"] == 1000

    verified = api.post(f"{BACKUP}/verify", json={"backupId": backup_id}, headers=wait(30))
    assert verified.status_code == 200, verified.get_json()
    assert verified.headers["Preference-Applied"] == "wait=30"
    verdict = verified.get_json()
    assert verdict["isValid"] is True and verdict["status"] == "completed"
    assert verdict["warnings"] == [] and verdict["level"] == "integrity"
    assert {check["name"] for check in verdict["checks"]} >= {"sha256", "decompress", "toc"}
    assert all(check["ok"] for check in verdict["checks"])
    kept = api.get(f"{BACKUP}/{backup_id}").get_json()["verificationResult"]
    assert kept == {key: verdict[key] for key in kept}  # the verdict the backup keeps

    rehearsed = api.post(f"{BACKUP}/restore", json={"backupId": backup_id, "dryRun": True,
                                                     "rehearse": True}, headers=wait(60))
    assert rehearsed.status_code == 200, rehearsed.get_json()
    assert rehearsed.headers["Preference-Applied"] == "wait=60"
    assert rehearsed.get_json()["analysis"]["canRestore"] is True
    rehearsal = rehearsed.get_json()["rehearsal"]
    assert rehearsal["status"] == "completed" and rehearsal["result"]["matchesManifest"]

    restored = api.post(f"{BACKUP}/restore", json={"backupId": backup_id,
                                                    "targetDatabase": RESTORED},
                        headers=wait(60))
    assert restored.status_code == 200, restored.get_json()
    restore = restored.get_json()
    assert restore["status"] == "completed" and restore["finishedAt"] is not None
    assert restore["result"]["database"] == RESTORED
    assert restore == api.get(f"{BACKUP}/restore/{restore['restoreId']}").get_json()
    with pg_server.connect(RESTORED) as conn:
        assert conn.execute("SELECT count(*) FROM film").fetchone()[0] == 1000


def test_a_wait_may_last_longer_than_one_blocking_read_of_redis(api, env, request, tmp_path):
    """The app's Redis client gives up on a reply after 5 s: a longer wait takes several."""
    gate = tmp_path / "gate"
    install_gated_pg_dump(Path(env["PATH"].split(":", 1)[0]), 1, gate)
    request.getfixturevalue("worker")
    opener = threading.Timer(8, gate.touch)  # the dump stalls for 8 s: the time is the point
    opener.start()
    started = time.monotonic()
    try:
        created = api.post(BACKUP, json={"type": "full"}, headers=wait(40))
    finally:
        opener.cancel()
    assert time.monotonic() - started >= 8
    assert created.status_code == 200, created.get_json()
    assert created.get_json()["status"] == "completed"


def test_a_job_that_fails_in_time_is_answered_failed(api, env, request):
    env["DATABASE_URL"] = env["DATABASE_URL"].rsplit("/", 1)[0] + "/no_such_db"
    request.getfixturevalue("worker")  # a worker that dumps a database that is not there
    created = api.post(BACKUP, json={"type": "full"}, headers=wait(30))
    assert created.status_code == 200
    body = created.get_json()
    assert body["status"] == "failed" == body["backup"]["status"]
    assert "no_such_db" in body["backup"]["error"]


def test_a_verification_whose_job_fails_says_why(app, api, run_worker):
    backup_id = completed_backup(api, run_worker, type="schema-only")
    queued = api.post(f"{BACKUP}/verify", json={"backupId": backup_id}).get_json()
    assert api.delete(f"{BACKUP}/{backup_id}").status_code == 200  # gone before it runs
    run_worker()
    with app.test_request_context():
        ended = ended_within(queued["jobId"], 1)
    error = f"RuntimeError: backup {backup_id} no longer exists"
    assert ended == Ended(ok=False, error=error)
    assert finished_verification(queued, ended) == {**queued, "status": "failed", "error": error}


def test_without_a_worker_the_wait_ends_in_the_usual_202(api):
    started = time.monotonic()
    created = api.post(BACKUP, json={"type": "schema-only"}, headers=wait(1))
    assert time.monotonic() - started >= 1  # it waited, and the job did not end
    assert created.status_code == 202
    assert "Preference-Applied" not in created.headers
    assert created.get_json()["status"] == "queued"


@pytest.mark.parametrize("headers", [
    {}, wait(0), wait("soon"), wait(-1), wait("1.5"), wait(""), {"Prefer": "respond-async"},
    {"Prefer": "wait"}, {"Prefer": "handling=lenient"},
], ids=repr)
def test_no_wait_asked_for_answers_202_at_once(api, headers):
    started = time.monotonic()
    created = api.post(BACKUP, json={"type": "schema-only"}, headers=headers)
    assert created.status_code == 202
    assert time.monotonic() - started < 1  # no worker runs: any wait would last seconds
    assert "Preference-Applied" not in created.headers
    assert set(created.get_json()) == {"backupId", "jobId", "status"}


@pytest.mark.parametrize(("prefer", "seconds"), [
    ("wait=10", 10),
    ('wait="7"', 7),
    ("WAIT = 5", 5),
    ("respond-async, wait=3", 3),
    ("wait=4; foo=bar", 4),
    ("handling=lenient,wait=2", 2),
    ("wait=3, wait=50", 3),  # only the first instance counts
    ("wait=soon, wait=50", 0),
    (f"wait={MAX_WAIT + 1}", MAX_WAIT),
    ("wait=99999999999999", MAX_WAIT),
    ("wait=0000000000000000003", 3),
    ("wait=0", 0), ("wait=-1", 0), ("wait=1.5", 0), ("wait=", 0), ("wait=²", 0),
    ("respond-async", 0), ("", 0),
])
def test_the_wait_preference_is_read_as_rfc_7240_says(app, prefer, seconds):
    with app.test_request_context(headers={"Prefer": prefer}):
        assert requested_wait() == seconds


def test_the_first_prefer_header_with_a_wait_counts(app):
    with app.test_request_context(headers=[("Prefer", "respond-async"), ("Prefer", "wait=8"),
                                           ("Prefer", "wait=9")]):
        assert requested_wait() == 8


def test_the_openapi_document_describes_the_preference(api):
    document = api.get("/api/openapi.json").get_json()
    for path in (BACKUP, f"{BACKUP}/verify", f"{BACKUP}/restore"):
        operation = document["paths"][path]["post"]
        assert [p["name"] for p in operation["parameters"]] == ["Prefer"]
        assert "Preference-Applied" in operation["responses"]["200"]["headers"]
        assert {"200", "202"} <= set(operation["responses"])
    verification = document["components"]["schemas"]["Verification"]
    assert {"isValid", "warnings"} <= set(verification["required"])
