"""Backups: create, list, show, delete, download, verify, and retry a failed copy."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request, send_file
from flask_login import current_user

from blueprints.api import bp, prefer
from blueprints.api.schemas import CreateBackupRequest, ListBackupsQuery, VerifyRequest, json_body
from blueprints.api.serializers import backup_json
from services import activity, backups, catalog_version, copies, copy_retries
from services.errors import CatalogError
from services.job_wait import Ended
from services.verification import start_verification


@bp.post("/system/backup")
def create_backup():
    params = CreateBackupRequest.model_validate(json_body())
    backup = backups.create_backup(params.type, compress=params.compress,
                                   destinations=params.destinations)
    accepted = {"backupId": backup.id, "jobId": backup.job_id, "status": backup.status}
    return prefer.answer(backup.job_id, accepted, lambda _: finished_backup(accepted))


def finished_backup(accepted: dict[str, Any]) -> dict[str, Any]:
    """A backup's job ended: its final status and the backup as ``GET .../<id>`` shows it."""
    backup = backups.get_backup(accepted["backupId"])
    return {**accepted, "status": backup.status, "backup": backup_json(backup, detail=True)}


@bp.get("/system/backup")
def list_backups():
    """One page of backups, by ``page`` or from the cursor ``after``. Its weak ETag is made
    of the catalog's version, the query and the caller's role: a client that sends it back
    in If-None-Match gets 304 for as long as no backup has changed, before any row is read."""
    query = ListBackupsQuery.model_validate(request.args.to_dict())
    if query.after and query.page != 1:
        raise CatalogError("page and after: page through with one of them",
                           code="invalid_filter")
    tag = catalog_version.etag("api", sorted(query.model_dump().items()), current_user.role)
    if request.if_none_match.contains_weak(tag):
        return unchanged(tag)
    page = backups.list_backups(query.type, query.status, query.page, query.perPage,
                                after=query.after)
    full = len(page.backups) == query.perPage
    response = jsonify(
        backups=[backup_json(backup) for backup in page.backups],
        total=page.total,
        totalSize=page.total_size,
        page=query.page,
        perPage=query.perPage,
        nextAfter=page.backups[-1].id if full else None,
    )
    return cached(response, tag)


def unchanged(tag: str) -> Response:
    return cached(Response(status=304), tag)


def cached(response: Response, tag: str) -> Response:
    """Caches keep the answer but ask each time (a 304 costs no query but the version's)."""
    response.set_etag(tag, weak=True)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.get("/system/backup/<backup_id:backup_id>")
def show_backup(backup_id: str):
    return jsonify(backup_json(backups.get_backup(backup_id), detail=True))


@bp.delete("/system/backup/<backup_id:backup_id>")
def delete_backup(backup_id: str):
    backups.delete_backup(backup_id, actor=current_user.display_name)
    return jsonify(deleted=backup_id)


@bp.get("/system/backup/<backup_id:backup_id>/download")
def download_backup(backup_id: str):
    path = backups.artifact_path(backup_id)
    activity.record("backup.download", backup_id)
    return send_file(path, as_attachment=True, download_name=path.name,
                     mimetype="application/octet-stream")


@bp.post("/system/backup/<backup_id:backup_id>/copies/<destination>/retry")
def retry_copy(backup_id: str, destination: str):
    job_id = copy_retries.retry(backup_id, destination, actor=current_user.display_name)
    return jsonify(backupId=backup_id, destination=destination, jobId=job_id,
                   status=copies.RETRYING), 202


@bp.post("/system/backup/verify")
def verify_backup():
    params = VerifyRequest.model_validate(json_body())
    job_id = start_verification(backups.checked_id(params.backupId), params.level)
    accepted = {"backupId": params.backupId, "level": params.level, "jobId": job_id,
                "status": "queued"}
    return prefer.answer(job_id, accepted, lambda ended: finished_verification(accepted, ended))


def finished_verification(accepted: dict[str, Any], ended: Ended) -> dict[str, Any]:
    """The verification's result (``{isValid, level, checks, warnings, checkedAt}``, as the
    backup keeps it), or why the job failed (it found no verdict)."""
    if ended.ok:
        return {**accepted, "status": "completed", **ended.value}
    return {**accepted, "status": "failed", "error": ended.error}
