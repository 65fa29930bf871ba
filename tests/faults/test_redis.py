"""Redis stopped, and Redis flushed (FLUSHALL), with one job running and others queued.

These tests get a Redis of their own (``private_redis``), so the session's shared Redis
is never stopped or flushed. Persistence is off, so a Redis started again on the same port
comes back empty, as one restarted without its data does.

- **Stopped**: while it is down the API refuses new work with 503 and records nothing;
  the running job still ends one way or the other, and once Redis is back a new worker
  fails the rows whose jobs were lost with it.
- **Flushed**: a worker that starts right after the flush (a restart, a deploy) finds the
  running job gone from Redis while its horse is still working; whatever it decides, the
  job's own end and the reconciliation must leave catalog, files and server in agreement.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import redis

from services.models import Backup, Restore
from tests.faults.helpers import Fault, change_the_database, new_database_name, single_line
from tests.faults.invariants import assert_invariants
from tools.localservices import RedisServer


class PrivateRedis:
    """A redis-server for one test that can be stopped and started again, empty, on the
    same port."""

    def __init__(self) -> None:
        self.server = RedisServer().start()
        self.port = self.server.port
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()

    def start_again(self) -> None:
        self.server = RedisServer(port=self.port).start()

    def flushall(self) -> None:
        redis.Redis.from_url(self.url).flushall()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.stop()


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    return private_redis.url


def start_running_job(fault: Fault, kind: str) -> tuple[type, str, subprocess.Popen]:
    """A job of ``kind`` taken by a real worker and stalled mid-stream."""
    if kind == "backup":
        fault.gate.arm("pg_dump")
        job = (Backup, fault.post_backup())
        tool, where = "pg_dump", fault.database
    else:
        backup_id = fault.completed_backup()
        change_the_database(fault.protected_url)
        fault.remember_protected()
        fault.gate.arm("pg_restore")
        response = fault.restore(backupId=backup_id, confirmDataLoss=True)
        assert response.status_code == 202, response.get_json()
        job = (Restore, response.get_json()["restoreId"])
        tool, where = "pg_restore", "%"
    worker = fault.start_worker()
    fault.wait_stalled(tool, where)
    return (*job, worker)


def queue_more(fault: Fault, kind: str) -> list[tuple[type, str]]:
    """Jobs queued behind the running one (one worker takes one job at a time)."""
    if kind != "backup":  # during a restore over the database, nothing else is accepted
        return []
    queued: list[tuple[type, str]] = [(Backup, fault.post_backup())]
    restorable = [b for b in fault.rows(Backup) if b.status == "completed"]
    if restorable:
        response = fault.restore(backupId=restorable[0].id, targetDatabase=new_database_name())
        assert response.status_code == 202, response.get_json()
        queued.append((Restore, response.get_json()["restoreId"]))
    return queued


def expect_lost_jobs_failed(fault: Fault, queued: list[tuple[type, str]]) -> None:
    for model, row_id in queued:
        row = fault.row(model, row_id)
        fault.expect(row.status == "failed",
                     f"{model.__name__.lower()} {row_id}, queued when Redis lost its jobs, is "
                     f"{row.status} ({single_line(row.error)})")


def wait_terminal(fault: Fault, model: type, row_id: str, timeout: float = 45) -> None:
    try:
        fault.wait_row(model, row_id, ("completed", "failed"), timeout)
    except AssertionError as exc:
        fault.expect(False, f"the running job never ended: {exc}")


@pytest.mark.parametrize("running", ["backup", "overwrite-restore"])
def test_redis_stopped_with_jobs_running_and_queued(
        fault: Fault, private_redis: PrivateRedis, running: str) -> None:
    if running == "backup":
        fault.completed_backup()  # something to restore from, for the queued restore
    model, running_id, worker = start_running_job(fault, running)
    queued = queue_more(fault, running)

    private_redis.stop()
    rows_before = len(fault.rows(Backup)), len(fault.rows(Restore))
    if running == "backup":
        what, refused = "a backup", fault.api.post("/api/system/backup", json={"type": "full"})
    else:  # during a restore over the database a backup gets 409 anyway: verify instead
        completed = next(b for b in fault.rows(Backup) if b.status == "completed")
        what, refused = "a verification", fault.api.post(
            "/api/system/backup/verify", json={"backupId": completed.id, "level": "integrity"})
    fault.expect(refused.status_code == 503,
                 f"{what} requested while Redis is down got {refused.status_code}, not 503")
    fault.expect((len(fault.rows(Backup)), len(fault.rows(Restore))) == rows_before,
                 "a request refused while Redis is down left a catalog row")
    fault.gate.release()
    wait_terminal(fault, model, running_id)

    private_redis.start_again()
    fault.stop_worker(worker)
    fault.settle()
    expect_lost_jobs_failed(fault, queued)
    assert_invariants(fault)


@pytest.mark.parametrize("running", ["backup", "overwrite-restore"])
def test_redis_flushed_with_jobs_running_and_queued(
        fault: Fault, private_redis: PrivateRedis, running: str) -> None:
    if running == "backup":
        fault.completed_backup()
    model, running_id, worker = start_running_job(fault, running)
    queued = queue_more(fault, running)

    private_redis.flushall()
    fault.settle()  # a worker starting now: the running job is gone from Redis
    fault.gate.release()
    wait_terminal(fault, model, running_id)
    fault.stop_worker(worker)
    fault.settle()
    expect_lost_jobs_failed(fault, queued)
    assert_invariants(fault)
