"""The app's health checks, run in the app's context and read by name."""

from __future__ import annotations

from datetime import datetime

from services.health import HealthCheck, run_checks


def checks(app, now: datetime | None = None) -> dict[str, HealthCheck]:
    with app.app_context():
        return {check.name: check for check in run_checks(now)}


def status(app, name: str) -> str:
    return checks(app)[name].status
