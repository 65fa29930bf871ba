"""Jobs: the app's jobs as RQ holds them, and what one of them is doing."""

from __future__ import annotations

from flask import jsonify, request
from pydantic import Field

from blueprints.api import bp
from blueprints.api.schemas import Strict
from blueprints.api.serializers import job_json
from services import backups, job_listing


class ListJobsQuery(Strict):
    status: job_listing.RqStatus | None = None
    limit: int = Field(default=job_listing.DEFAULT_LIMIT, ge=1, le=job_listing.MAX_LIMIT)


@bp.get("/system/jobs")
def list_jobs():
    query = ListJobsQuery.model_validate(request.args.to_dict())
    return jsonify(jobs=[job_json(job) for job in job_listing.list_jobs(query.status,
                                                                        query.limit)])


@bp.get("/system/jobs/<job_id:job_id>")
def job_status(job_id: str):
    return jsonify(job_json(backups.job_status(job_id)))
