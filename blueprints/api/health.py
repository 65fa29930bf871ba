"""GET /api/system/health: every health check with its status and reason."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import jsonify

from blueprints.api import bp
from services import health


@bp.get("/system/health")
def system_health():
    """Always 200: the body's ``status`` (ok, setup, warning, critical) says how things are;
    ``setup`` is a first run with no backup yet."""
    now = datetime.now(UTC)
    response = jsonify(health.to_dict(health.run_checks(now), now))
    response.headers["Cache-Control"] = "no-store"
    return response
