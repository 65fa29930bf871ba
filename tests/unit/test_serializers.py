"""blueprints.api.serializers: one time format, and the engine's data shaped as the API's JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from blueprints.api.serializers import (
    backup_json,
    dry_run_json,
    dry_run_report_json,
    iso,
    job_json,
    verification_json,
)
from pgbackup import Check, VerifyResult
from pgbackup.dryrun import (
    BackupSummary,
    Changes,
    Compatibility,
    DiskCheck,
    DryRunReport,
    Estimate,
    OpenConnection,
    TableChange,
    TableRows,
    TargetSummary,
    VersionCheck,
)
from services.backups import JobStatus
from services.json_shapes import verification_record
from services.models import Backup
from services.restores import DryRun

NAIVE = datetime(2026, 11, 26, 13, 53, 43, 388999)  # the catalog's naive UTC


def test_iso_is_utc_milliseconds_and_z() -> None:
    assert iso(NAIVE) == "2026-11-26T13:53:43.388Z"  # truncated, not rounded
    assert iso(NAIVE.replace(tzinfo=UTC)) == "2026-11-26T13:53:43.388Z"
    berlin = timezone(timedelta(hours=1))
    assert iso(datetime(2026, 11, 26, 14, 53, 43, tzinfo=berlin)) == "2026-11-26T13:53:43.000Z"
    assert iso(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000Z"
    assert iso(None) is None


def test_a_verification_result_keeps_its_stored_shape() -> None:
    result = VerifyResult("integrity", [Check("manifest", True, "readable"),
                                        Check("size", False, "12 bytes on disk, 13")],
                          ["a warning"], datetime(2026, 3, 1, 2, 3, 4, 5000, tzinfo=UTC))
    stored = {"isValid": False, "level": "integrity",
              "checks": [{"name": "manifest", "ok": True, "detail": "readable"},
                         {"name": "size", "ok": False, "detail": "12 bytes on disk, 13"}],
              "warnings": ["a warning"], "checkedAt": "2026-03-01T02:03:04.005Z"}
    assert verification_record(result) == stored
    assert list(verification_record(result)) == list(stored)
    assert verification_json(result) == stored


def _report(errors: list[str]) -> DryRunReport:
    created = datetime(2026, 3, 1, 3, 0, tzinfo=timezone(timedelta(hours=1)))
    return DryRunReport(
        mode="overwrite",
        backup=BackupSummary("backup-2026-03-01T02-00-00-000Z", "full", created, 10, "shop",
                             "15.4", ["public"], [TableRows("public", "actor", 200)], 250),
        target=TargetSummary("shop", True, "15.4", ["public"], [], 100),
        changes=Changes([], [], [TableChange("public.gone", 2, 0, -2)], [], []),
        compatibility=Compatibility(VersionCheck("15.4", "15.4", True, None), [], [], [], [],
                                    "postgres"),
        disk=DiskCheck(1000, 100, True, ["a note"]),
        connections=[OpenConnection(7, "app", None, None, "idle",
                                    datetime(2026, 3, 1, 1, 2, 3, 456789, tzinfo=UTC))],
        estimate=Estimate(None, None, "no past restore to estimate from"),
        warnings=[], errors=errors,
    )


def test_a_dry_run_report_in_camel_case_with_iso_times() -> None:
    data = json.loads(json.dumps(dry_run_report_json(_report([]))))
    assert list(data) == ["mode", "backup", "target", "changes", "compatibility", "disk",
                          "connections", "estimate", "warnings", "errors", "canRestore"]
    assert data["canRestore"] is True
    assert data["backup"]["created"] == "2026-03-01T02:00:00.000Z"
    assert data["backup"]["serverVersion"] == "15.4" and data["backup"]["tocEntries"] == 250
    assert data["changes"]["dropped"] == [
        {"table": "public.gone", "rowsBefore": 2, "rowsAfter": 0, "delta": -2,
         "partitionOf": None}]
    assert data["compatibility"]["serverVersion"]["ok"] is True
    assert data["connections"][0]["backendStart"] == "2026-03-01T01:02:03.456Z"
    assert data["disk"]["backupDirFreeBytes"] == 1000


def test_a_dry_run_carries_its_integrity_check() -> None:
    checked = datetime(2026, 3, 1, tzinfo=UTC)
    good = VerifyResult("integrity", [Check("manifest", True, "readable")], [], checked)
    data = dry_run_json(DryRun(good, _report(["no"])))
    assert data["canRestore"] is False and data["errors"] == ["no"]
    assert list(data)[-2:] == ["canRestore", "integrity"]
    assert data["integrity"]["checkedAt"] == "2026-03-01T00:00:00.000Z"

    bad = VerifyResult("integrity", [Check("manifest", True, "readable"),
                                     Check("sha256", False, "abc does not match")], [], checked)
    assert dry_run_json(DryRun(bad, None)) == {
        "canRestore": False, "integrity": verification_record(bad),
        "errors": ["the backup failed its integrity check (sha256: abc does not match)"],
        "warnings": []}


def test_a_job_has_every_key_and_iso_times() -> None:
    job = JobStatus("backup-x", "backup", "running", "started", "backup-x", None, None,
                    {"phase": "dump"}, NAIVE.replace(tzinfo=UTC), NAIVE, None)
    assert job_json(job) == {
        "jobId": "backup-x", "kind": "backup", "description": None, "queue": None,
        "worker": None, "status": "running", "rqStatus": "started",
        "backupId": "backup-x", "restoreId": None, "error": None, "progress": {"phase": "dump"},
        "enqueuedAt": "2026-11-26T13:53:43.388Z", "startedAt": "2026-11-26T13:53:43.388Z",
        "endedAt": None}
    forgotten = JobStatus("restore-y", "restore", "completed", None, "backup-x", "restore-y",
                          None, {})
    assert {key: job_json(forgotten)[key] for key in ("enqueuedAt", "startedAt", "endedAt")} \
        == {"enqueuedAt": None, "startedAt": None, "endedAt": None}


def test_a_backup_with_iso_times() -> None:
    backup = Backup(id="backup-2026-11-26T13-53-43-388Z", type="full", status="completed",
                    created_at=NAIVE, started_at=NAIVE, finished_at=NAIVE, verified_at=None,
                    compress=True)
    data = backup_json(backup, detail=True)
    assert data["created"] == data["startedAt"] == data["finishedAt"] \
        == "2026-11-26T13:53:43.388Z"
    assert data["verifiedAt"] is None and data["compression"] == "zstd"
