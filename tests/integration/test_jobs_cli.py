"""flask jobs list|show print what GET /api/system/jobs and /api/system/jobs/<id> answer,
from the same service; refusals are one line and an exit status, or a 4xx JSON error."""

from __future__ import annotations

import json
import os
import socket

from jobs.queues import QUEUES
from tools.localservices import free_port

JOBS = "/api/system/jobs"
SCHEDULE = {"name": "nightly", "type": "full", "frequency": "daily", "time": "02:00"}
# The in-process worker of the run_worker fixture, named as jobs.worker names workers.
WORKER = f"{socket.gethostname()}.{os.getpid()}.{','.join(QUEUES)}"


def jobs(app, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["jobs", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_list_and_show_print_the_apis_jobs(app, api, run_worker):
    backup = api.post("/api/system/backup", json={"type": "schema-only"}).get_json()
    run_worker()
    assert api.post("/api/system/backup/schedule", json=SCHEDULE).status_code == 201

    listed = json.loads(jobs(app, "list", "--json"))
    assert listed == api.get(JOBS).get_json()
    finished = {job["jobId"]: job for job in listed["jobs"] if job["rqStatus"] == "finished"}
    job = finished[backup["jobId"]]
    assert (job["kind"], job["status"], job["queue"], job["worker"], job["backupId"]) == (
        "backup", "completed", "backups", WORKER, backup["backupId"])
    assert job["description"].startswith("schema-only backup of ")

    scheduled = json.loads(jobs(app, "list", "--status", "scheduled", "--json"))["jobs"]
    assert scheduled == api.get(f"{JOBS}?status=scheduled").get_json()["jobs"]
    kinds = {job["jobId"].split("-")[0]: (job["kind"], job["rqStatus"], job["worker"])
             for job in scheduled}
    assert kinds == {"schedule": ("schedule", "scheduled", None),
                     "retention": ("retention", "scheduled", None),
                     "alerts": ("alerts", "scheduled", None)}
    assert json.loads(jobs(app, "list", "--limit", "1", "--json")) == api.get(
        f"{JOBS}?limit=1").get_json()
    assert len(api.get(f"{JOBS}?limit=1").get_json()["jobs"]) == 1

    text = jobs(app, "list").splitlines()
    assert (f"{backup['jobId']}\tbackup\tfinished\tbackups\t{WORKER}\t"
            f"{job['description']}") in text
    assert text[-1] == f"{len(listed['jobs'])} jobs"

    shown = json.loads(jobs(app, "show", backup["jobId"], "--json"))
    assert shown == api.get(f"{JOBS}/{backup['jobId']}").get_json() == job
    lines = jobs(app, "show", backup["jobId"]).splitlines()
    assert [line.split()[0] for line in lines] == list(job)
    assert f"worker       {WORKER}" in lines and "restoreId    -" in lines


def test_refusals(app, api):
    missing = app.test_cli_runner().invoke(args=["jobs", "show", "no-such-job"])
    assert (missing.exit_code, missing.output) == (1, "Error: no job with id 'no-such-job'\n")
    bad = app.test_cli_runner().invoke(args=["jobs", "list", "--status", "running"])
    assert bad.exit_code == 2 and "'running' is not one of 'queued', 'started'" in bad.output
    for query in ("status=running", "limit=0", "limit=501", "limit=x", "sort=id"):
        response = api.get(f"{JOBS}?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"]["code"] == "invalid_request", query
    assert api.get(f"{JOBS}/no-such-job").get_json()["error"]["code"] == "not_found"


def test_an_unreachable_redis_is_one_line(app, api):
    port = free_port()
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    app.extensions.pop("redis", None)
    sentence = (f"Redis at 127.0.0.1:{port} is unreachable (Connection refused); start it or "
                "check REDIS_URL")
    for args in (["list"], ["show", "some-job"]):
        result = app.test_cli_runner().invoke(args=["jobs", *args])
        assert (result.exit_code, result.output) == (1, f"Error: {sentence}\n"), args
    response = api.get(JOBS)
    assert response.status_code == 503
    assert response.get_json()["error"] == {"code": "queue_unavailable", "message": sentence}
