"""Restores: dry run (with an optional rehearsal), start, list and show."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from blueprints.api import bp, prefer
from blueprints.api.schemas import RestoreRequest, json_body
from blueprints.api.serializers import dry_run_json, restore_json
from services import restores
from services.backups import checked_id


@bp.post("/system/backup/restore")
def restore_backup():
    params = RestoreRequest.model_validate(json_body())
    backup_id = checked_id(params.backupId) if params.backupId is not None else None
    if params.dryRun:
        analysis = dry_run_json(restores.dry_run(backup_id, params.targetDatabase,
                                                 params.moment))
        if not params.rehearse:
            return jsonify(dryRun=True, analysis=analysis)
        rehearsal = restores.start_restore(backup_id, "rehearsal", point_in_time=params.moment)
        return prefer.answer(
            rehearsal.job_id, {"dryRun": True, "analysis": analysis,
                               "rehearsal": restore_json(rehearsal)},
            lambda _: {"dryRun": True, "analysis": analysis,
                       "rehearsal": finished_restore(rehearsal.id)})
    restore = restores.start_restore(backup_id, params.mode, params.targetDatabase,
                                     create_roles=params.createRoles,
                                     point_in_time=params.moment)
    return prefer.answer(restore.job_id, restore_json(restore),
                         lambda _: finished_restore(restore.id))


def finished_restore(restore_id: str) -> dict[str, Any]:
    """A restore's job ended: the restore in its final state, with its result."""
    return restore_json(restores.get_restore(restore_id), detail=True)


@bp.get("/system/backup/restore")
def list_restores():
    return jsonify(restores=[restore_json(restore) for restore in restores.list_restores()])


@bp.get("/system/backup/restore/<restore_id:restore_id>")
def show_restore(restore_id: str):
    return jsonify(restore_json(restores.get_restore(restore_id), detail=True))
