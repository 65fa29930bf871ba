"""JSON API under /api: backups, jobs and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_file, stream_with_context
from flask_login import current_user

import activity
import catalog
import restores
from blueprints.openapi import openapi_document
from blueprints.schemas import (
    ActivityExportQuery,
    ActivityQuery,
    CreateBackupRequest,
    ListBackupsQuery,
    RestoreRequest,
    VerifyRequest,
    json_body,
)
from blueprints.serializers import backup_json, dry_run_json, job_json, restore_json
from models import utcnow
from pgbackup import is_backup_id

bp = Blueprint("api", __name__, url_prefix="/api")


def _checked_id(backup_id: str) -> str:
    """A backup id sent in a body; ids in paths are checked by blueprints.converters."""
    if not is_backup_id(backup_id):
        raise catalog.CatalogError(
            f"invalid backup id {backup_id!r}: ids look like backup-2024-01-15T10-30-00-000Z",
            code="invalid_id",
        )
    return backup_id


@bp.post("/system/backup")
def create_backup():
    params = CreateBackupRequest.model_validate(json_body())
    backup = catalog.create_backup(params.type, compress=params.compress)
    return jsonify(backupId=backup.id, jobId=backup.job_id, status=backup.status), 202


@bp.get("/system/backup")
def list_backups():
    query = ListBackupsQuery.model_validate(request.args.to_dict())
    page = catalog.list_backups(query.type, query.status, query.page, query.perPage)
    return jsonify(
        backups=[backup_json(backup) for backup in page.backups],
        total=page.total,
        totalSize=page.total_size,
        page=query.page,
        perPage=query.perPage,
    )


@bp.get("/system/backup/<backup_id:backup_id>")
def show_backup(backup_id: str):
    return jsonify(backup_json(catalog.get_backup(backup_id), detail=True))


@bp.delete("/system/backup/<backup_id:backup_id>")
def delete_backup(backup_id: str):
    catalog.delete_backup(backup_id, actor=current_user.display_name)
    return jsonify(deleted=backup_id)


@bp.get("/system/backup/<backup_id:backup_id>/download")
def download_backup(backup_id: str):
    path = catalog.artifact_path(backup_id)
    activity.record("backup.download", backup_id)
    return send_file(path, as_attachment=True, download_name=path.name,
                     mimetype="application/octet-stream")


@bp.post("/system/backup/verify")
def verify_backup():
    params = VerifyRequest.model_validate(json_body())
    job_id = restores.start_verification(_checked_id(params.backupId), params.level)
    return jsonify(backupId=params.backupId, level=params.level, jobId=job_id,
                   status="queued"), 202


@bp.post("/system/backup/restore")
def restore_backup():
    params = RestoreRequest.model_validate(json_body())
    backup_id = _checked_id(params.backupId)
    if params.dryRun:
        analysis = dry_run_json(restores.dry_run(backup_id, params.targetDatabase))
        if not params.rehearse:
            return jsonify(dryRun=True, analysis=analysis)
        rehearsal = restores.start_restore(backup_id, "rehearsal")
        return jsonify(dryRun=True, analysis=analysis, rehearsal=restore_json(rehearsal)), 202
    restore = restores.start_restore(backup_id, params.mode, params.targetDatabase)
    return jsonify(restore_json(restore)), 202


@bp.get("/system/backup/restore")
def list_restores():
    return jsonify(restores=[restore_json(restore) for restore in restores.list_restores()])


@bp.get("/system/backup/restore/<restore_id:restore_id>")
def show_restore(restore_id: str):
    return jsonify(restore_json(restores.get_restore(restore_id), detail=True))


@bp.get("/system/jobs/<job_id:job_id>")
def job_status(job_id: str):
    return jsonify(job_json(catalog.job_status(job_id)))


@bp.get("/system/activity")
def list_activity():
    query = ActivityQuery.model_validate(request.args.to_dict())
    return jsonify(events=[activity.as_dict(event)
                           for event in activity.recent(query.limit, query.filters())])


@bp.get("/system/activity/export")
def export_activity():
    """The whole matching log, oldest first, streamed as CSV or JSON Lines."""
    query = ActivityExportQuery.model_validate(request.args.to_dict())
    activity.record("activity.export", detail=_export_description(query))
    lines = activity.csv_lines if query.format == "csv" else activity.json_lines
    mimetype = "text/csv" if query.format == "csv" else "application/x-ndjson"
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        stream_with_context(lines(activity.oldest_first(query.filters()))), mimetype=mimetype,
        headers={"Content-Disposition":
                 f'attachment; filename="activity-{stamp}.{query.format}"'})


def _export_description(query: ActivityExportQuery) -> str:
    chosen = query.model_dump(exclude_none=True, exclude={"format"})
    return f"{query.format}; " + (", ".join(f"{key}={value}" for key, value in chosen.items())
                                  or "everything")


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
