"""App context for code that runs outside a request (RQ jobs, worker hooks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, has_app_context

_app: Flask | None = None


def _worker_app() -> Flask:
    """The worker process builds its app once, from the same environment as the web."""
    global _app
    if _app is None:
        from app import create_app
        from services.extensions import db

        _app = create_app()
        with _app.app_context():
            engine = db.engine
        # A forked work horse must not use the connections pooled by its parent (two
        # processes on one SQLite or libpq connection corrupt it): it opens its own and
        # leaves the parent's to the parent (SQLAlchemy's advice for os.fork()).
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return _app


@contextmanager
def app_context() -> Iterator[None]:
    """Reuse the current app context (in-process workers in tests) or push the worker's."""
    if has_app_context():
        yield
        return
    with _worker_app().app_context():
        yield
