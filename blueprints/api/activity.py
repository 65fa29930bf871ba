"""The activity log: recent events, and the whole log exported as CSV or JSON Lines."""

from __future__ import annotations

from flask import Response, jsonify, request, stream_with_context

from blueprints.api import bp
from blueprints.api.schemas import ActivityExportQuery, ActivityQuery
from services import activity
from services.models import utcnow


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
