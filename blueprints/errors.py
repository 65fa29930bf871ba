"""One error shape for the API: ``{"error": {"code", "message"}}``, never an HTML page."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from services.errors import CatalogError


def json_error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error={"code": code, "message": message}), status


def describe_validation_error(exc: ValidationError) -> str:
    """'compress: Input should be a valid boolean; type: ...' from pydantic's error list."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(item) for item in error["loc"]) or "body"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(message if error["type"] == "value_error" else f"{where}: {message}")
    return "; ".join(parts)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CatalogError)
    def catalog_error(exc: CatalogError):
        if _wants_json():
            return json_error(exc.status, exc.code, exc.message)
        return render_template("pages/error.html", message=exc.message), exc.status

    @app.errorhandler(ValidationError)
    def validation_error(exc: ValidationError):
        return json_error(400, "invalid_request", describe_validation_error(exc))

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        message = f"CSRF check failed: {exc.description} Reload the page and try again."
        if _wants_json():
            return json_error(400, "csrf_failed", message)
        return render_template("pages/error.html", message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if _wants_json():
            code = (exc.name or "error").lower().replace(" ", "_")
            response, status = json_error(exc.code or 500, code, exc.description or exc.name)
            for name, value in exc.get_headers():  # Allow on a 405, Retry-After, ...
                if name.lower() != "content-type":
                    response.headers[name] = value
            return response, status
        return exc

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return json_error(500, "internal_error", "internal error; see the server log")
        html = render_template("pages/error.html", message="Internal error; see the server log.")
        return html, 500
