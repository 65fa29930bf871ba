"""Domain objects as the API's JSON: camelCase keys, times from :func:`iso` only.

Services and the engine return data (rows, dataclasses with datetimes); this module shapes
it for the JSON API, the CLI's ``--json`` output and the dashboard's templates. Every time
the app writes as text is ``YYYY-MM-DDTHH:MM:SS.mmmZ`` from :func:`iso`, defined in
``json_shapes`` (below the blueprints, so that services and jobs can use it too) and
re-exported here.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from pgbackup import DryRunReport, VerifyResult
from services.backups import JobStatus
from services.destination_health import DestinationHealth
from services.json_shapes import iso, verification_record
from services.models import Backup, BackupCopy, Restore
from services.restores import DryRun

__all__ = [
    "backup_json",
    "destination_health_json",
    "dry_run_json",
    "dry_run_report_json",
    "iso",
    "job_json",
    "restore_json",
    "verification_json",
]


def backup_json(backup: Backup, detail: bool = False) -> dict[str, Any]:
    data = {
        "id": backup.id,
        "filename": backup.filename,
        "size": backup.size,
        "created": iso(backup.created_at),
        "type": backup.type,
        "status": backup.status,
        "verification": backup.verification,
        "verifiedAt": iso(backup.verified_at),
        "origin": backup.origin,
        "durationMs": backup.duration_ms,
        "database": backup.database,
        "compression": "zstd" if backup.compress else "none",
        "jobId": backup.job_id,
        "parentId": backup.parent_id,
        "error": backup.error,
        "copies": [copy_json(copy) for copy in backup.copies],
        "capture": capture_json(backup),
        "captureNote": backup.capture_note,
    }
    if detail:
        data |= {
            "sha256": backup.sha256,
            "startedAt": iso(backup.started_at),
            "finishedAt": iso(backup.finished_at),
            "tables": [table_json(table) for table in backup.tables or []],
            # Stored already shaped (json_shapes.verification_record), served as stored.
            "verificationResult": backup.verification_result,
        }
    return data


def table_json(table: dict[str, Any]) -> dict[str, Any]:
    """One table as the catalog keeps it (pgbackup.TableInfo as a dict), with the API's keys;
    ``partitionOf`` is null for rows stored before partitions were told apart."""
    return {"schema": table["schema"], "name": table["name"], "rows": table.get("rows"),
            "checksum": table.get("checksum"), "partitionOf": table.get("partition_of")}


def capture_json(backup: Backup) -> dict[str, Any] | None:
    if backup.slot_name is None:
        return None
    return {"slot": backup.slot_name, "startLsn": backup.start_lsn, "endLsn": backup.end_lsn,
            "consistentAt": iso(backup.consistent_at), "coversUntil": iso(backup.covers_until),
            "firstCommitAt": iso(backup.first_commit_at),
            "lastCommitAt": iso(backup.last_commit_at)}


def copy_json(copy: BackupCopy) -> dict[str, Any]:
    return {"destination": copy.destination, "status": copy.status, "required": copy.required,
            "encrypted": copy.encrypted, "size": copy.size, "sha256": copy.sha256,
            "location": copy.location, "error": copy.error,
            "lockedUntil": iso(copy.locked_until), "storedAt": iso(copy.stored_at),
            "attempts": copy.attempts, "attemptedAt": iso(copy.attempted_at)}


def destination_health_json(health: DestinationHealth) -> dict[str, Any]:
    return {"lastGoodCopyAt": iso(health.last_good_at), "lastError": health.last_error,
            "lastErrorAt": iso(health.last_error_at),
            "consecutiveFailures": health.consecutive_failures,
            "storedCopies": health.stored_copies, "bytesStored": health.bytes_stored}


def restore_json(restore: Restore, detail: bool = False) -> dict[str, Any]:
    data = {
        "restoreId": restore.id,
        "jobId": restore.job_id,
        "backupId": restore.backup_id,
        "mode": restore.mode,
        "targetDatabase": restore.target_database,
        "status": restore.status,
        "safetyBackupId": restore.safety_backup_id,
        "pointInTime": iso(restore.point_in_time),
        "created": iso(restore.created_at),
        "durationMs": restore.duration_ms,
        "error": restore.error,
    }
    if detail:
        data |= {"startedAt": iso(restore.started_at), "finishedAt": iso(restore.finished_at),
                 "result": restore.result}
    return data


def job_json(job: JobStatus) -> dict[str, Any]:
    """``GET /api/system/jobs/<jobId>`` and each of ``GET /api/system/jobs``; the
    dashboard's progress fragments read it too."""
    return {
        "jobId": job.job_id,
        "kind": job.kind,
        "description": job.description,
        "queue": job.queue,
        "worker": job.worker,
        "status": job.status,
        "rqStatus": job.rq_status,
        "backupId": job.backup_id,
        "restoreId": job.restore_id,
        "error": job.error,
        "progress": job.progress,
        "enqueuedAt": iso(job.enqueued_at),
        "startedAt": iso(job.started_at),
        "endedAt": iso(job.ended_at),
    }


def verification_json(result: VerifyResult) -> dict[str, Any]:
    """A verification result, in the shape the catalog stores it (``verificationResult``)."""
    return verification_record(result)


def dry_run_json(result: DryRun) -> dict[str, Any]:
    """The ``analysis`` of a dry run: the report, and the integrity check it started with.
    A backup that failed its integrity check gets only the verdict and the failures."""
    integrity = verification_json(result.integrity)
    if result.report is None:
        return {"canRestore": result.can_restore, "integrity": integrity,
                "errors": result.errors, "warnings": result.warnings}
    return {**dry_run_report_json(result.report), "integrity": integrity}


_CHAIN_FIELDS = ("chain", "window", "pointInTime")


def dry_run_report_json(report: DryRunReport) -> dict[str, Any]:
    """Every field of the report, nested dataclasses included, with camelCase keys; the
    chain's fields only for a chain (an incremental, a point in time)."""
    data = _camel_case(report)
    if report.chain is None:
        data = {key: value for key, value in data.items() if key not in _CHAIN_FIELDS}
    return {**data, "canRestore": report.can_restore}


def _camel_case(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_camel(field.name): _camel_case(getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_camel_case(item) for item in value]
    if isinstance(value, datetime):
        return iso(value)
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
