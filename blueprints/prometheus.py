"""``GET /metrics``: Prometheus text format, behind the same guard as every other route."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from flask.blueprints import BlueprintSetupState
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from services.metrics import build_registry

bp = Blueprint("metrics", __name__)
REGISTRY_KEY = "metrics_registry"


@bp.record_once
def _add_registry(state: BlueprintSetupState) -> None:
    state.app.extensions[REGISTRY_KEY] = build_registry()


@bp.get("/metrics")
def scrape() -> Response:
    body = generate_latest(current_app.extensions[REGISTRY_KEY])
    return Response(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
