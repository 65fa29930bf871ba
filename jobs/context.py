"""App context for code that runs outside a request (RQ jobs, worker hooks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, has_app_context

_app: Flask | None = None


def _worker_app() -> Flask:
    """The worker process builds its app once, from the same environment as the web."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


@contextmanager
def app_context() -> Iterator[None]:
    """Reuse the current app context (in-process workers in tests) or push the worker's."""
    if has_app_context():
        yield
        return
    with _worker_app().app_context():
        yield
