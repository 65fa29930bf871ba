"""The JSON API under /api: one module per resource, every route on the blueprint ``api``
(endpoints are ``api.<view>``, the names services.permissions grants). Request bodies and
queries are validated by the pydantic models in ``schemas``; responses are shaped by
``serializers``; ``openapi`` describes it all."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from blueprints.api import (  # noqa: E402  (the modules add their routes to bp)
    activity,
    backups,
    destinations,
    health,
    jobs,
    notifications,
    openapi,
    restores,
    schedules,
)

__all__ = ["activity", "backups", "bp", "destinations", "health", "jobs", "notifications",
           "openapi", "restores", "schedules"]
