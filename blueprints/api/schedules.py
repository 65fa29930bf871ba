"""JSON API for schedules and the retention preview, under /api/system/backup."""

from __future__ import annotations

from flask import jsonify

from blueprints.api import bp
from blueprints.api.schemas import CreateScheduleRequest, ScheduleFields, json_body
from blueprints.api.serializers import iso
from services import retention, schedules


@bp.get("/system/backup/schedule")
def list_schedules():
    return jsonify(schedules=[schedules.schedule_json(s) for s in schedules.list_schedules()])


@bp.post("/system/backup/schedule")
def create_schedule():
    fields = CreateScheduleRequest.model_validate(json_body()).model_dump(exclude_unset=True)
    return jsonify(schedules.schedule_json(schedules.create_schedule(fields))), 201


@bp.get("/system/backup/schedule/<id:schedule_id>")
def show_schedule(schedule_id: int):
    return jsonify(schedules.schedule_json(schedules.get_schedule(schedule_id)))


@bp.put("/system/backup/schedule/<id:schedule_id>")
def update_schedule(schedule_id: int):
    fields = ScheduleFields.model_validate(json_body()).model_dump(exclude_unset=True)
    return jsonify(schedules.schedule_json(schedules.update_schedule(schedule_id, fields)))


@bp.delete("/system/backup/schedule/<id:schedule_id>")
def delete_schedule(schedule_id: int):
    schedules.delete_schedule(schedule_id)
    return jsonify(deleted=schedule_id)


@bp.post("/system/backup/schedule/<id:schedule_id>/run")
def run_schedule(schedule_id: int):
    run = schedules.run_now(schedule_id)
    return jsonify(scheduleId=schedule_id, outcome=run.outcome, backupId=run.backup_id,
                   reason=run.reason), 202


@bp.get("/system/backup/retention/preview")
def retention_preview():
    decisions = retention.plan()
    trims = retention.copy_plan()
    return jsonify(
        deleteCount=sum(d.delete for d in decisions),
        decisions=[{"backupId": d.backup_id, "delete": d.delete, "reason": d.reason}
                   for d in decisions],
        copies=[{"backupId": t.backup_id, "destination": t.destination, "delete": t.delete,
                 "reason": t.reason} for t in trims],
        generatedAt=iso(schedules.now_utc()),
    )
