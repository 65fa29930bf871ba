"""The OpenAPI 3.1 document for the JSON API, built from the request schemas."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from blueprints.api import bp
from blueprints.api.destinations import DESTINATION_REQUEST
from blueprints.api.notifications import CHANNEL_REQUEST
from blueprints.api.schemas import (
    CreateBackupRequest,
    CreateScheduleRequest,
    RestoreRequest,
    ScheduleFields,
    VerifyRequest,
)
from blueprints.converters import BackupIdConverter, JobIdConverter, RestoreIdConverter
from pgbackup import __version__
from services import activity
from services.job_listing import MAX_LIMIT, RQ_STATUSES

# The path converters' own patterns: an id that does not match is a 404.
BACKUP_ID = {"type": "string", "pattern": f"^{BackupIdConverter.regex}$"}
RESTORE_ID = {"type": "string", "pattern": f"^{RestoreIdConverter.regex}$"}
JOB_ID = {"type": "string", "pattern": f"^{JobIdConverter.regex}$"}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}
DB_ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}

BACKUP = {
    "type": "object",
    # every backup has these; the detail (GET .../<id>) adds sha256, startedAt, finishedAt,
    # tables and verificationResult
    "required": ["id", "filename", "size", "created", "type", "status", "verification",
                 "verifiedAt", "origin", "durationMs", "database", "compression", "jobId",
                 "parentId", "error", "copies", "capture", "captureNote"],
    "properties": {
        "id": BACKUP_ID,
        "filename": NULLABLE_STRING,
        "size": NULLABLE_INT,
        "created": {"type": "string", "format": "date-time"},
        "type": {"type": "string", "enum": ["full", "schema-only", "incremental"]},
        "status": {"type": "string", "enum": ["queued", "running", "completed", "failed"]},
        "verification": {"type": "string",
                         "enum": ["unverified", "valid", "corrupted", "missing"]},
        "verifiedAt": NULLABLE_STRING,
        "verificationResult": {
            "type": ["object", "null"], "description": "the newest verification's result",
            "required": ["isValid", "level", "checks", "warnings", "checkedAt"],
            "properties": {
                "isValid": {"type": "boolean"},
                "level": {"type": "string", "enum": ["integrity", "restore"]},
                "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "checkedAt": {"type": "string", "format": "date-time"}}},
        "origin": {"type": "string", "enum": ["manual", "safety", "schedule"]},
        "durationMs": NULLABLE_INT,
        "database": {"type": "string"},
        "compression": {"type": "string", "enum": ["zstd", "none"]},
        "jobId": NULLABLE_STRING,
        "parentId": NULLABLE_STRING,
        "error": NULLABLE_STRING,
        "sha256": NULLABLE_STRING,
        "startedAt": NULLABLE_STRING,
        "finishedAt": NULLABLE_STRING,
        "tables": {"type": "array", "description": "the manifest's tables", "items": {
            "type": "object", "required": ["schema", "name", "rows", "checksum"],
            "properties": {"schema": {"type": "string"}, "name": {"type": "string"},
                           "rows": {"type": ["integer", "null"],
                                    "description": "null for a schema-only backup"},
                           "checksum": NULLABLE_STRING,
                           "partitionOf": {"type": ["string", "null"], "description":
                                           "a partition's partitioned table"}}}},
        "copies": {"type": "array", "items": {"$ref": "#/components/schemas/BackupCopy"}},
        "capture": {"type": ["object", "null"], "description": "the chain of captured "
                    "changes this backup starts or continues (null: none)", "properties": {
                        "slot": {"type": "string"}, "startLsn": {"type": "string"},
                        "endLsn": {"type": "string"}, "consistentAt": NULLABLE_STRING,
                        "coversUntil": NULLABLE_STRING, "firstCommitAt": NULLABLE_STRING,
                        "lastCommitAt": NULLABLE_STRING}},
        "captureNote": {"type": ["string", "null"], "description": "why this backup starts "
                        "no chain, or a new one"},
    },
}

BACKUP_LIST = {
    "type": "object",
    "required": ["backups", "total", "totalSize", "page", "perPage", "nextAfter"],
    "properties": {"backups": {"type": "array", "items": {"$ref": "#/components/schemas/Backup"}},
                   "total": {"type": "integer", "description": "every match, not just the page"},
                   "totalSize": {"type": "integer", "description": "bytes, every match"},
                   "page": {"type": "integer"}, "perPage": {"type": "integer"},
                   "nextAfter": {**NULLABLE_STRING, "description":
                                 "the cursor of the next page (after=), null once a page "
                                 "is not full"}},
}

BACKUP_COPY = {
    "type": "object",
    "description": "The backup at one destination, checked there by its SHA-256.",
    "required": ["destination", "status", "required", "encrypted", "size", "sha256",
                 "location", "error", "lockedUntil", "storedAt", "attempts", "attemptedAt"],
    "properties": {
        "destination": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "stored", "retrying", "failed"],
                   "description": "retrying: a write failed and another is queued or running"},
        "required": {"type": "boolean"},
        "encrypted": {"type": "boolean"},
        "size": NULLABLE_INT,
        "sha256": NULLABLE_STRING,
        "location": NULLABLE_STRING,
        "error": NULLABLE_STRING,
        "lockedUntil": NULLABLE_STRING,
        "storedAt": NULLABLE_STRING,
        "attempts": {"type": "integer", "description": "writes tried, retries included"},
        "attemptedAt": {"type": ["string", "null"], "format": "date-time",
                        "description": "the last write, first or retried"},
    },
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

JOB = {
    "type": "object",
    "required": ["jobId", "status", "progress"],
    "properties": {
        "jobId": {"type": "string"},
        "kind": {"type": "string", "description": "backup, restore, verification, ..."},
        "status": {"type": ["string", "null"], "description": "queued, running, completed "
                   "or failed (the catalog's words); null when neither knows the job"},
        "rqStatus": NULLABLE_STRING,
        "backupId": NULLABLE_STRING,
        "restoreId": NULLABLE_STRING,
        "description": {"type": ["string", "null"], "description": "what the job does, "
                        "e.g. full backup of shop (backup-...)"},
        "queue": {"type": ["string", "null"], "description": "the RQ queue it runs on"},
        "worker": {"type": ["string", "null"], "description": "the worker that runs or ran "
                   "it, named <host>.<pid>.<queues> as rq info shows it"},
        "error": NULLABLE_STRING,
        "progress": {
            "type": "object",
            "properties": {
                "bytesWritten": {"type": "integer"},
                "currentTable": NULLABLE_STRING,
                "tablesDone": {"type": "integer"},
                "tablesTotal": {"type": "integer"},
            },
        },
        "enqueuedAt": NULLABLE_STRING,
        "startedAt": NULLABLE_STRING,
        "endedAt": NULLABLE_STRING,
    },
}


RESTORE = {
    "type": "object",
    "required": ["restoreId", "jobId", "backupId", "mode", "targetDatabase", "status"],
    "properties": {
        "restoreId": {"type": "string"},
        "jobId": NULLABLE_STRING,
        "backupId": BACKUP_ID,
        "mode": {"type": "string", "enum": ["overwrite", "new-database", "rehearsal"]},
        "targetDatabase": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "completed", "failed"]},
        "safetyBackupId": NULLABLE_STRING,
        "pointInTime": {"type": ["string", "null"], "format": "date-time",
                        "description": "the moment a chain was restored to; backupId is "
                                       "then the last backup of the chain read"},
        "created": {"type": "string", "format": "date-time"},
        "durationMs": NULLABLE_INT,
        "error": NULLABLE_STRING,
        "startedAt": NULLABLE_STRING,
        "finishedAt": NULLABLE_STRING,
        "result": {"type": ["object", "null"]},
    },
}


SCHEDULE = {
    "type": "object",
    "required": ["id", "name", "type", "frequency", "timezone", "enabled", "nextRunAt"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "type": {"type": "string"},
        "frequency": {"type": "string"},
        "time": NULLABLE_STRING,
        "dayOfWeek": NULLABLE_INT,
        "dayOfMonth": NULLABLE_INT,
        "cron": NULLABLE_STRING,
        "timezone": {"type": "string"},
        "retention": {"type": "integer"},
        "keepAtLeast": {"type": "integer"},
        "verify": {"type": "string"},
        "enabled": {"type": "boolean"},
        "destinations": {"type": ["array", "null"], "items": {"type": "string"}},
        "description": {"type": "string"},
        "nextRunAt": NULLABLE_STRING,
        "nextRunLocal": NULLABLE_STRING,
        "lastRunAt": NULLABLE_STRING,
        "lastStatus": NULLABLE_STRING,
    },
}


HEALTH = {
    "type": "object",
    "required": ["status", "checkedAt", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "setup", "warning", "critical"],
                   "description": "the worst check's; setup: a first run, no backup yet"},
        "checkedAt": {"type": "string"},
        "checks": {"type": "array", "items": {
            "type": "object", "required": ["name", "status", "reason", "data"],
            "properties": {"name": {"type": "string"}, "status": {"type": "string"},
                           "reason": {"type": "string"}, "data": {"type": "object"}}}},
    },
}


CHANNEL = {
    "type": "object", "required": ["id", "name", "kind", "enabled", "config", "createdAt"],
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["webhook", "email", "slack"]},
        "enabled": {"type": "boolean"},
        "config": {"type": "object", "description": "the kind's settings; write-only ones "
                   "(webhook secret, email password, slack url) read \"set\" or null"},
        "createdAt": {"type": "string", "format": "date-time"},
    },
}
ALERT = {
    "type": "object", "required": ["id", "key", "severity", "message", "open", "startedAt"],
    "properties": {
        "id": {"type": "integer"}, "key": {"type": "string"},
        "severity": {"type": "string", "enum": ["warning", "critical"]},
        "message": {"type": "string"}, "open": {"type": "boolean"},
        "startedAt": {"type": "string", "format": "date-time"},
        "lastNotifiedAt": NULLABLE_STRING, "clearedAt": NULLABLE_STRING,
    },
}
DELIVERY = {
    "type": "object", "required": ["id", "channelId", "event", "status", "attempts"],
    "properties": {
        "id": {"type": "integer"}, "channelId": {"type": "integer"},
        "channelName": {"type": "string"}, "alertId": NULLABLE_INT,
        "alertKey": NULLABLE_STRING,
        "event": {"type": "string", "enum": ["fired", "reminder", "cleared", "test"]},
        "status": {"type": "string", "enum": ["pending", "sent", "failed"]},
        "attempts": {"type": "integer"}, "lastError": NULLABLE_STRING,
        "createdAt": {"type": "string", "format": "date-time"}, "sentAt": NULLABLE_STRING,
    },
}


def _list_of(key: str, item: str, description: str) -> dict[str, Any]:
    return _json({"type": "object", "properties": {
        key: {"type": "array", "items": _ref(item)}}}, description)


def _notification_paths() -> dict[str, Any]:
    channel_id = [_id_param("channelId", DB_ID)]
    body = {"required": True, "content": {"application/json": {
        "schema": _ref("NotificationChannelRequest")}}}
    test_result = {"type": "object", "required": ["ok", "error", "deliveryId"],
                   "properties": {"ok": {"type": "boolean"}, "error": NULLABLE_STRING,
                                  "deliveryId": {"type": "integer"}}}
    return {
        "/api/system/notifications/channels": {
            "get": {"summary": "Notification channels (secrets read \"set\" or null)",
                    "responses": {"200": _list_of("channels", "NotificationChannel",
                                                  "Channels"), **_errors(401)}},
            "post": {"summary": "Add a webhook, email or Slack channel", "requestBody": body,
                     "responses": {"201": _json(_ref("NotificationChannel"), "Created"),
                                   **_errors(400, 401, 409)}},
        },
        "/api/system/notifications/channels/{channelId}": {
            "put": {"summary": "Edit a channel; write-only settings left out are kept",
                    "parameters": channel_id, "requestBody": body,
                    "responses": {"200": _json(_ref("NotificationChannel"), "The channel"),
                                  **_errors(400, 401, 404, 409)}},
            "delete": {"summary": "Delete a channel and its deliveries",
                       "parameters": channel_id,
                       "responses": {"200": _json({"type": "object"}, "Deleted"),
                                     **_errors(401, 404)}},
        },
        "/api/system/notifications/channels/{channelId}/test": {
            "post": {"summary": "Send a test notification now and say how it went",
                     "parameters": channel_id,
                     "responses": {"200": _json(test_result, "Sent, or why not"),
                                   **_errors(401, 404)}},
        },
        "/api/system/notifications/deliveries": {
            "get": {"summary": "Recent deliveries, newest first",
                    "parameters": [{"name": "limit", "in": "query", "schema": {
                        "type": "integer", "minimum": 1, "maximum": 500}}],
                    "responses": {"200": _list_of("deliveries", "Delivery", "Deliveries"),
                                  **_errors(400, 401)}},
        },
        "/api/system/alerts": {
            "get": {"summary": "Open alerts, then those cleared in the last 7 days",
                    "responses": {"200": _list_of("alerts", "Alert", "Alerts"),
                                  **_errors(401)}},
        },
    }



# What destination_json answers: the fields common to both types, then the type's settings
# (flat, as stored); the S3 secret access key is write-only and reads "set" or null.
_DESTINATION_COMMON = {
    "id": {"type": ["integer", "null"], "description": "null for the built-in local"},
    "name": {"type": "string"},
    "builtin": {"type": "boolean", "description": "the built-in local (BACKUP_DIR)"},
    "encryptTo": {"type": "array", "items": {"type": "string"},
                  "description": "age recipients (age1...) what it stores is encrypted to"},
    "required": {"type": "boolean"},
    "retention": {"type": "object", "required": ["days", "keepAtLeast"],
                  "properties": {"days": NULLABLE_INT, "keepAtLeast": NULLABLE_INT}},
    "objectLock": {"type": ["object", "null"], "required": ["mode", "days"],
                   "properties": {"mode": {"type": "string",
                                           "enum": ["GOVERNANCE", "COMPLIANCE"]},
                                  "days": {"type": "integer"}}},
    "createdAt": {"type": ["string", "null"], "format": "date-time",
                  "description": "null for the built-in local"},
    "health": {
        "type": "object", "description": "from its copies in the catalog",
        "required": ["lastGoodCopyAt", "lastError", "lastErrorAt", "consecutiveFailures",
                     "storedCopies", "bytesStored"],
        "properties": {
            "lastGoodCopyAt": {"type": ["string", "null"], "format": "date-time"},
            "lastError": NULLABLE_STRING,
            "lastErrorAt": {"type": ["string", "null"], "format": "date-time"},
            "consecutiveFailures": {"type": "integer",
                                    "description": "copies failed since the last stored"},
            "storedCopies": {"type": "integer"}, "bytesStored": {"type": "integer"}}},
}
_DESTINATION_REQUIRED = ["id", "name", "type", "builtin", "encryptTo", "required",
                         "retention", "objectLock", "createdAt", "health"]
DESTINATION = {"oneOf": [
    {"type": "object", "additionalProperties": False,
     "required": [*_DESTINATION_REQUIRED, "path"],
     "properties": {**_DESTINATION_COMMON, "type": {"const": "local"},
                    "path": {"type": "string"}}},
    {"type": "object", "additionalProperties": False,
     "required": [*_DESTINATION_REQUIRED, "bucket", "prefix", "endpointUrl", "region",
                  "accessKeyId", "forcePathStyle", "secretAccessKey", "deleteObjects"],
     "properties": {**_DESTINATION_COMMON, "type": {"const": "s3"},
                    "bucket": {"type": "string"}, "prefix": {"type": "string"},
                    "endpointUrl": NULLABLE_STRING, "region": NULLABLE_STRING,
                    "accessKeyId": NULLABLE_STRING, "forcePathStyle": {"type": "boolean"},
                    "deleteObjects": {"type": "boolean", "description": "false: never "
                                      "delete here (a key without delete permission); "
                                      "the bucket's lifecycle rules expire the objects"},
                    "secretAccessKey": {"enum": ["set", None],
                                        "description": "write-only: \"set\" or null"}}},
]}


def _destination_paths() -> dict[str, Any]:
    destination_id = [_id_param("destinationId", DB_ID)]
    body = {"required": True, "content": {"application/json": {
        "schema": _ref("DestinationRequest")}}}
    probe = {"type": "object", "required": ["ok", "message"],
             "properties": {"ok": {"type": "boolean"}, "message": {"type": "string"}}}
    deleted = {"type": "object", "required": ["deleted"],
               "properties": {"deleted": {"type": "integer"}}}
    return {
        "/api/system/destinations": {
            "get": {"summary": "Destinations, the built-in local first (secrets read \"set\" "
                               "or null)",
                    "responses": {"200": _list_of("destinations", "Destination",
                                                  "Destinations"), **_errors(401)}},
            "post": {"summary": "Add a local directory (it must exist) or an S3 bucket",
                     "requestBody": body,
                     "responses": {"201": _json(_ref("Destination"), "Created"),
                                   **_errors(400, 401, 409)}},
        },
        "/api/system/destinations/{destinationId}": {
            "get": {"summary": "One destination", "parameters": destination_id,
                    "responses": {"200": _json(_ref("Destination"), "The destination"),
                                  **_errors(401, 404)}},
            "put": {"summary": "Replace a destination; a secretAccessKey left out is kept",
                    "parameters": destination_id, "requestBody": body,
                    "responses": {"200": _json(_ref("Destination"), "The destination"),
                                  **_errors(400, 401, 404, 409)}},
            "delete": {"summary": "Forget a destination that holds no backup copy",
                       "parameters": destination_id,
                       "responses": {"200": _json(deleted, "Deleted"),
                                     **_errors(401, 404, 409)}},
        },
        "/api/system/destinations/{destinationId}/test": {
            "post": {"summary": "Write, read back and delete a probe object; say how it went",
                     "parameters": destination_id,
                     "responses": {"200": _json(probe, "Probed, or which step failed"),
                                   **_errors(401, 404)}},
        },
        "/api/system/destinations/rescan": {
            "post": {"summary": "Rebuild the catalog from the manifests on a destination "
                                "(destination null: every one); the job's progress.report "
                                "holds the report",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": RESCAN_REQUEST}}},
                     "responses": {"202": _json(JOB_ACCEPTED, "Rescan queued"),
                                   **_errors(400, 401, 503)}},
        },
    }


RESCAN_REQUEST = {"type": "object", "additionalProperties": False, "properties": {
    "destination": {"type": ["string", "null"], "minLength": 1, "maxLength": 80},
    "acceptForeign": {"type": "boolean", "default": False,
                      "description": "also import unsigned manifests and those signed "
                                     "with another key, once their artifact checks out"}}}
JOB_ACCEPTED = {"type": "object", "required": ["jobId"],
                "properties": {"jobId": {"type": "string"}}}


ACTIVITY_EVENT = {
    "type": "object",
    "required": ["at", "actor", "action", "target", "outcome", "source", "detail", "times"],
    "properties": {"at": {"type": "string", "format": "date-time"}, "actor": {"type": "string"},
                   "action": {"type": "string"}, "target": NULLABLE_STRING,
                   "outcome": {"enum": list(activity.OUTCOMES)},
                   "source": NULLABLE_STRING, "detail": NULLABLE_STRING,
                   "times": {"type": "integer", "minimum": 1,
                             "description": "how often it happened (repeats collapsed)"}},
}
ACTIVITY_FILTERS = [
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "UTC, inclusive"},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "UTC, exclusive"},
    {"name": "actor", "in": "query", "schema": {"type": "string", "minLength": 1,
                                                "maxLength": 80}},
    {"name": "action", "in": "query", "schema": {"type": "string", "minLength": 1,
                                                 "maxLength": 40}},
    {"name": "outcome", "in": "query", "schema": {"enum": list(activity.OUTCOMES)}},
    {"name": "kind", "in": "query", "schema": {"enum": list(activity.KINDS)},
     "description": "the action's family: backup (also copy.*, slot.*), user (also login, "
                    "logout), destination (also destinations.*), ..."},
]
_TIME = {"type": "string", "format": "date-time"}
DRY_RUN_ANALYSIS = {
    "type": "object",
    "description": "The analysis of the backup (of a chain: of its full), and for an "
                   "incremental or a pointInTime the chain, its window and the replay",
    "properties": {
        "canRestore": {"type": "boolean"},
        "chain": {"type": ["array", "null"], "items": {
            "type": "object",
            "properties": {"backupId": BACKUP_ID, "type": {"enum": ["full", "incremental"]},
                           "created": _TIME, "startLsn": {"type": "string"},
                           "endLsn": {"type": "string"}, "coversUntil": _TIME,
                           "replayed": {"type": "boolean"}}}},
        "window": {"type": ["object", "null"], "description": "the moments the chain reaches",
                   "properties": {"earliest": _TIME, "latest": _TIME}},
        "pointInTime": {"type": ["object", "null"], "properties": {
            "moment": _TIME,
            "replayed": {"type": "array", "items": BACKUP_ID,
                         "description": "the full first, then the incrementals replayed"},
            "inside": {"type": ["string", "null"],
                       "description": "the incremental whose later transactions are left out"},
            "tablesAtPreviousState": {"type": "array", "items": {"type": "string"},
                                      "description": "tables without a usable key that keep "
                                                     "the previous backup's state"}}},
    },
}
DRY_RUN = {
    "type": "object", "required": ["dryRun", "analysis"],
    "properties": {"dryRun": {"const": True}, "analysis": DRY_RUN_ANALYSIS},
}
REHEARSAL = {
    "type": "object", "required": ["dryRun", "analysis", "rehearsal"],
    "properties": {"dryRun": {"const": True}, "analysis": DRY_RUN_ANALYSIS,
                   "rehearsal": {"$ref": "#/components/schemas/Restore"}},
}


BACKUP_QUEUED = {"type": "object", "required": ["backupId", "jobId", "status"],
                 "properties": {"backupId": BACKUP_ID, "jobId": {"type": "string"},
                                "status": {"const": "queued"}}}
BACKUP_FINISHED = {
    "type": "object", "required": ["backupId", "jobId", "status", "backup"],
    "description": "The backup's job ended (Prefer: wait): completed, or failed with the "
                   "reason in backup.error",
    "properties": {"backupId": BACKUP_ID, "jobId": {"type": "string"},
                   "status": {"type": "string", "enum": ["completed", "failed"]},
                   "backup": {"$ref": "#/components/schemas/Backup"}},
}
_VERIFICATION_JOB = {"backupId": BACKUP_ID,
                     "level": {"type": "string", "enum": ["integrity", "restore"]},
                     "jobId": {"type": "string"}}
VERIFICATION_QUEUED = {"type": "object", "required": ["backupId", "level", "jobId", "status"],
                       "properties": {**_VERIFICATION_JOB, "status": {"const": "queued"}}}
VERIFICATION = {
    "type": "object",
    "description": "A verification's verdict (Prefer: wait): the result the backup keeps as "
                   "verificationResult",
    "required": ["backupId", "level", "jobId", "status", "isValid", "checks", "warnings",
                 "checkedAt"],
    "properties": {
        **_VERIFICATION_JOB, "status": {"const": "completed"},
        "isValid": {"type": "boolean"},
        "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "checkedAt": {"type": "string", "format": "date-time"},
    },
}
CHECK = {"type": "object", "required": ["name", "ok", "detail"],
         "properties": {"name": {"type": "string"}, "ok": {"type": "boolean"},
                        "detail": {"type": "string"}}}
VERIFICATION_FAILED = {
    "type": "object", "description": "The verification job failed and gave no verdict",
    "required": ["backupId", "level", "jobId", "status", "error"],
    "properties": {**_VERIFICATION_JOB, "status": {"const": "failed"},
                   "error": {"type": "string"}},
}
PREFER = {
    "name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
    "description": "RFC 7240. `wait=N` (seconds, at most 60): answer 200 with the final "
                   "result if the job ends within N seconds, else 202 as without it. Other "
                   "preferences, and a wait that is not a number, are ignored.",
}
PREFERENCE_APPLIED = {"Preference-Applied": {
    "description": "`wait=N`: the wait that was applied (the one asked for, at most 60)",
    "schema": {"type": "string"}}}


def _waited(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """The 200 of an operation that a client asked to wait for (Prefer: wait=N)."""
    return {**_json(schema, description), "headers": PREFERENCE_APPLIED}


RESTORE_CONFLICTS = (
    "Conflict with the current state: another restore running (restore_running), the "
    "database exists (database_exists), a backup missing or incomplete, a broken chain "
    "(chain_broken), or point_in_time_unreachable: the moment is outside every chain's "
    "reach (with backupId: outside its chain's), and the message names the reachable "
    "windows")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    """Error responses; every authenticated operation may also answer 403 (role)."""
    reasons = {400: "Invalid input", 401: "Not authenticated",
               403: "Your role may not do this", 404: "Not found",
               409: "Conflict with the current state", 503: "Job queue unavailable"}
    codes = (*codes, 403) if 401 in codes else codes
    return {str(code): _json(_ref("Error"), reasons[code]) for code in codes}


def _id_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _paths() -> dict[str, Any]:
    backup_id = [_id_param("backupId", BACKUP_ID)]
    schedule_id = [_id_param("scheduleId", DB_ID)]
    list_params = [
        {"name": "type", "in": "query", "schema": BACKUP["properties"]["type"]},
        {"name": "status", "in": "query", "schema": BACKUP["properties"]["status"]},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "perPage", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "after", "in": "query", "schema": BACKUP_ID,
         "description": "a keyset cursor (a backup id, nextAfter): the page after it"},
    ]
    retry_queued = {"type": "object",
                    "required": ["backupId", "destination", "jobId", "status"],
                    "properties": {"backupId": BACKUP_ID, "destination": {"type": "string"},
                                   "jobId": {"type": "string"},
                                   "status": {"const": "retrying"}}}
    return {
        "/api/system/backup": {
            "post": {
                "summary": "Start a backup (runs as a job; Prefer: wait=N waits for it)",
                "parameters": [PREFER],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("CreateBackupRequest")}}},
                "responses": {"200": _waited(_ref("BackupFinished"), "The backup's job ended "
                                             "within the wait asked for"),
                              "202": _json(_ref("BackupQueued"), "Backup queued"),
                              **_errors(400, 401, 409, 503)},
            },
            "get": {
                "summary": "List backups, newest first",
                "parameters": list_params,
                "responses": {"200": _json(_ref("BackupList"), "One page of backups"),
                              "304": {"description": "Unchanged: If-None-Match holds the "
                                                     "list's current ETag"},
                              **_errors(400, 401)},
            },
        },
        "/api/system/backup/{backupId}": {
            "get": {"summary": "One backup with its table list", "parameters": backup_id,
                    "responses": {"200": _json(_ref("Backup"), "The backup"),
                                  **_errors(401, 404)}},
            "delete": {"summary": "Delete artifact, manifest and catalog entry",
                       "parameters": backup_id,
                       "responses": {"200": _json({"type": "object"}, "Deleted"),
                                     **_errors(401, 404, 409)}},
        },
        "/api/system/backup/{backupId}/download": {
            "get": {"summary": "Download the artifact as stored", "parameters": backup_id,
                    "responses": {"200": {"description": "The artifact",
                                          "content": {"application/octet-stream": {}}},
                                  **_errors(401, 404, 409)}},
        },
        "/api/system/backup/{backupId}/copies/{destination}/retry": {
            "post": {"summary": "Make a failed copy again now, from a stored copy (one try)",
                     "parameters": [*backup_id, {
                         "name": "destination", "in": "path", "required": True,
                         "schema": {"type": "string", "minLength": 1, "maxLength": 80}}],
                     "responses": {"202": _json(retry_queued, "Retry queued"),
                                   **_errors(401, 404, 409, 503)}},
        },
        "/api/system/backup/verify": {
            "post": {
                "summary": "Verify a backup (integrity, or a real test restore) as a job; "
                           "Prefer: wait=N waits for the verdict",
                "parameters": [PREFER],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("VerifyRequest")}}},
                "responses": {"200": _waited({"oneOf": [_ref("Verification"),
                                                        _ref("VerificationFailed")]},
                                             "The verification ended within the wait"),
                              "202": _json(_ref("VerificationQueued"), "Verification queued"),
                              **_errors(400, 401, 404, 409, 503)},
            },
        },
        "/api/system/backup/restore": {
            "post": {
                "summary": "Dry-run, or restore into a new database or over the protected "
                           "one; Prefer: wait=N waits for a restore or rehearsal to end",
                "parameters": [PREFER],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("RestoreRequest")}}},
                "responses": {"200": _waited({"anyOf": [_ref("DryRun"), _ref("Restore"),
                                                        _ref("Rehearsal")]},
                                             "Dry-run analysis (always at once); or, with "
                                             "Prefer: wait, the restore (or the dry run and "
                                             "its rehearsal) in its final state"),
                              "202": _json({"oneOf": [_ref("Restore"), _ref("Rehearsal")]},
                                           "Restore queued, or a dry run with a rehearsal"),
                              **_errors(400, 401, 404, 409, 503),
                              "409": _json(_ref("Error"), RESTORE_CONFLICTS)},
            },
            "get": {
                "summary": "Recent restores, newest first",
                "responses": {"200": _json({"type": "object", "properties": {
                    "restores": {"type": "array", "items": _ref("Restore")}}}, "Restores"),
                    **_errors(401)},
            },
        },
        "/api/system/backup/restore/{restoreId}": {
            "get": {"summary": "One restore with its result",
                    "parameters": [_id_param("restoreId", RESTORE_ID)],
                    "responses": {"200": _json(_ref("Restore"), "The restore"),
                                  **_errors(401, 404)}},
        },
        "/api/system/backup/schedule": {
            "get": {"summary": "All schedules",
                    "responses": {"200": _json({"type": "object", "required": ["schedules"],
                                                "properties": {"schedules": {
                                                    "type": "array", "items": _ref("Schedule")}}},
                                               "Schedules"), **_errors(401)}},
            "post": {"summary": "Create a schedule",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("CreateScheduleRequest")}}},
                     "responses": {"201": _json(_ref("Schedule"), "Created"),
                                   **_errors(400, 401, 409)}},
        },
        "/api/system/backup/schedule/{scheduleId}": {
            "get": {"summary": "One schedule", "parameters": schedule_id,
                    "responses": {"200": _json(_ref("Schedule"), "The schedule"),
                                  **_errors(401, 404)}},
            "put": {"summary": "Change any subset of a schedule's fields",
                    "parameters": schedule_id,
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": _ref("ScheduleFields")}}},
                    "responses": {"200": _json(_ref("Schedule"), "Updated"),
                                  **_errors(400, 401, 404, 409)}},
            "delete": {"summary": "Delete a schedule (its backups stay)",
                       "parameters": schedule_id,
                       "responses": {"200": _json({
                           "type": "object", "required": ["deleted"],
                           "properties": {"deleted": {"type": "integer"}}}, "Deleted"),
                                     **_errors(401, 404)}},
        },
        "/api/system/backup/schedule/{scheduleId}/run": {
            "post": {"summary": "Run a schedule now", "parameters": schedule_id,
                     "responses": {"202": _json({"type": "object"}, "Started or skipped"),
                                   **_errors(401, 404, 409, 503)}},
        },
        "/api/system/backup/retention/preview": {
            "get": {"summary": "What the next clean-up would delete, and why",
                    "responses": {"200": _json({"type": "object"}, "Decisions"),
                                  **_errors(401)}},
        },
        "/api/system/health": {
            "get": {"summary": "Health checks; status is the worst of them",
                    "responses": {"200": _json(HEALTH, "The checks"), **_errors(401)}},
        },
        "/api/system/activity": {
            "get": {"summary": "The activity log, newest first",
                    "parameters": [*ACTIVITY_FILTERS, {"name": "limit", "in": "query", "schema": {
                        "type": "integer", "minimum": 1, "maximum": 1000}}],
                    "responses": {"200": _json({"type": "object", "required": ["events"],
                                                "properties": {"events": {
                                                    "type": "array",
                                                    "items": ACTIVITY_EVENT}}}, "Events"),
                                  **_errors(400, 401, 403)}},
        },
        "/api/system/activity/export": {
            "get": {"summary": "The whole matching activity log, oldest first, as a CSV or "
                               "JSON Lines download (recorded as an activity.export event)",
                    "parameters": [*ACTIVITY_FILTERS, {"name": "format", "in": "query",
                                   "schema": {"enum": ["csv", "jsonl"], "default": "csv"}}],
                    "responses": {"200": {"description": "The events",
                                          "content": {"text/csv": {"schema": {"type": "string"}},
                                                      "application/x-ndjson": {
                                                          "schema": {"type": "string"}}}},
                                  **_errors(400, 401, 403)}},
        },
        "/api/system/jobs": {
            "get": {"summary": "The app's jobs as RQ holds them, newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "description": "RQ's status",
                         "schema": {"enum": list(RQ_STATUSES)}},
                        {"name": "limit", "in": "query", "schema": {
                            "type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}],
                    "responses": {"200": _json({"type": "object", "required": ["jobs"],
                                                "properties": {"jobs": {
                                                    "type": "array", "items": _ref("Job")}}},
                                               "Jobs"),
                                  **_errors(400, 401, 503)}},
        },
        "/api/system/jobs/{jobId}": {
            "get": {"summary": "Job status and progress",
                    "parameters": [_id_param("jobId", JOB_ID)],
                    "responses": {"200": _json(_ref("Job"), "The job"),
                                  **_errors(401, 404, 503)}},
        },
    }


def openapi_document() -> dict[str, Any]:
    channel_request = CHANNEL_REQUEST.json_schema(ref_template="#/components/schemas/{model}")
    channel_schemas = {**channel_request.pop("$defs"), "NotificationChannelRequest":
                       channel_request, "NotificationChannel": CHANNEL, "Alert": ALERT,
                       "Delivery": DELIVERY}
    destination_request = DESTINATION_REQUEST.json_schema(
        ref_template="#/components/schemas/{model}")
    destination_schemas = {**destination_request.pop("$defs"),
                           "DestinationRequest": destination_request,
                           "Destination": DESTINATION}
    return {
        "openapi": "3.1.0",
        "info": {"title": "PostgreSQL backup manager", "version": __version__},
        "security": [{"bearer": []}, {"session": []}],
        "paths": _paths() | _notification_paths() | _destination_paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": {
                "CreateBackupRequest": CreateBackupRequest.model_json_schema(),
                "BackupCopy": BACKUP_COPY,
                "VerifyRequest": VerifyRequest.model_json_schema(),
                "RestoreRequest": RestoreRequest.model_json_schema(),
                "Restore": RESTORE,
                "Schedule": SCHEDULE,
                "CreateScheduleRequest": CreateScheduleRequest.model_json_schema(),
                "ScheduleFields": ScheduleFields.model_json_schema(),
                **channel_schemas,
                **destination_schemas,
                "Backup": BACKUP,
                "BackupList": BACKUP_LIST,
                "BackupQueued": BACKUP_QUEUED,
                "BackupFinished": BACKUP_FINISHED,
                "VerificationQueued": VERIFICATION_QUEUED,
                "Verification": VERIFICATION,
                "Check": CHECK,
                "VerificationFailed": VERIFICATION_FAILED,
                "DryRun": DRY_RUN,
                "Rehearsal": REHEARSAL,
                "Job": JOB,
                "Error": ERROR,
            },
        },
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
