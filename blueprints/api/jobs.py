"""Job status: what a queued backup, restore or verification is doing."""

from __future__ import annotations

from flask import jsonify

from blueprints.api import bp
from blueprints.api.serializers import job_json
from services import backups


@bp.get("/system/jobs/<job_id:job_id>")
def job_status(job_id: str):
    return jsonify(job_json(backups.job_status(job_id)))
