"""JSON API for schedules and the retention preview, under /api/system/backup."""

from __future__ import annotations

from flask import Blueprint, jsonify

import retention
import schedules
from blueprints.schemas import CreateScheduleRequest, ScheduleFields, json_body
from blueprints.serializers import iso

bp = Blueprint("schedules_api", __name__, url_prefix="/api/system/backup")


@bp.get("/schedule")
def list_schedules():
    return jsonify(schedules=[schedules.schedule_json(s) for s in schedules.list_schedules()])


@bp.post("/schedule")
def create_schedule():
    fields = CreateScheduleRequest.model_validate(json_body()).model_dump(exclude_unset=True)
    return jsonify(schedules.schedule_json(schedules.create_schedule(fields))), 201


@bp.get("/schedule/<id:schedule_id>")
def show_schedule(schedule_id: int):
    return jsonify(schedules.schedule_json(schedules.get_schedule(schedule_id)))


@bp.put("/schedule/<id:schedule_id>")
def update_schedule(schedule_id: int):
    fields = ScheduleFields.model_validate(json_body()).model_dump(exclude_unset=True)
    return jsonify(schedules.schedule_json(schedules.update_schedule(schedule_id, fields)))


@bp.delete("/schedule/<id:schedule_id>")
def delete_schedule(schedule_id: int):
    schedules.delete_schedule(schedule_id)
    return jsonify(deleted=schedule_id)


@bp.post("/schedule/<id:schedule_id>/run")
def run_schedule(schedule_id: int):
    run = schedules.run_now(schedule_id)
    return jsonify(scheduleId=schedule_id, outcome=run.outcome, backupId=run.backup_id,
                   reason=run.reason), 202


@bp.get("/retention/preview")
def retention_preview():
    decisions = retention.plan()
    return jsonify(
        deleteCount=sum(d.delete for d in decisions),
        decisions=[{"backupId": d.backup_id, "delete": d.delete, "reason": d.reason}
                   for d in decisions],
        generatedAt=iso(schedules.now_utc()),
    )
