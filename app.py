"""Application factory: ``flask --app app run`` or ``gunicorn 'app:create_app()'``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from flask import Flask, Response
from sqlalchemy import event
from sqlalchemy.engine import Engine

from blueprints import api, auth, dashboard, prometheus
from blueprints.api.serializers import iso
from blueprints.converters import register_converters
from blueprints.errors import register_error_handlers
from commands import register_commands
from pgbackup import ConfigError
from services import catalog_upgrade
from services.extensions import csrf, db, login_manager, migrate
from services.settings import load_settings

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment; ``test_config`` overrides both env and config."""
    app = Flask(__name__, instance_relative_config=True)
    if test_config is None:
        load_dotenv()
    environ = {**os.environ, **(test_config or {})}
    try:
        app.config.from_mapping(load_settings(environ, Path(app.instance_path)))
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    app.config.update(test_config or {})
    register_converters(app)
    _configure_logging(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(catalog_upgrade.MIGRATIONS), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    auth.init_app(app)
    for blueprint in (api, dashboard, prometheus):
        app.register_blueprint(blueprint.bp)
    register_error_handlers(app)
    register_commands(app)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    app.after_request(_security_headers)
    app.jinja_env.globals["can"] = auth.can
    app.jinja_env.filters["iso"] = iso  # machine-readable times: the API's one format
    with app.app_context():
        _bring_the_catalog_up_to_date()
    return app


def _bring_the_catalog_up_to_date() -> None:
    try:
        catalog_upgrade.bring_up_to_date()
    except catalog_upgrade.CatalogSchemaError as exc:
        url = db.engine.url.render_as_string()  # hides the password
        raise SystemExit(f"catalog error ({url}): {exc}") from None


def _security_headers(response: Response) -> Response:
    """No inline script or style anywhere: htmx, JS and CSS come from /static."""
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


def _configure_logging(app: Flask) -> None:
    if not app.debug and not app.testing:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL and a busy timeout let web, worker and CLI share one SQLite catalog."""
    if type(dbapi_connection).__module__ == "sqlite3":
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
