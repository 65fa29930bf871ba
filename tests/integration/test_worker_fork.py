"""A forked work horse does not inherit its worker's pooled catalog connections: it opens
its own, and the worker's still work after the horse is gone (jobs/context.py)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from jobs import context
from services.extensions import db


def _query_and_pooled() -> int:
    """Run a query in the worker app's context; how many connections its pool then holds."""
    with context.app_context():
        assert db.session.execute(text("SELECT 1")).scalar() == 1
        db.session.remove()  # back to the pool, as after a job
        return db.engine.pool.checkedin()


@pytest.mark.empty_target
def test_a_forked_horse_leaves_its_workers_pool_alone(env: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(context, "_app", None)  # the worker's own app, from that environment
    assert _query_and_pooled() == 1
    with context.app_context():
        parents = db.engine.pool

    child = os.fork()
    if child == 0:  # the horse: a new, empty pool, then a connection of its own
        try:
            with context.app_context():
                inherited = db.engine.pool is parents or db.engine.pool.checkedin() != 0
            os._exit(1 if inherited or _query_and_pooled() != 1 else 0)
        finally:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    with context.app_context():
        assert db.engine.pool is parents
    assert _query_and_pooled() == 1  # the worker's pooled connection still answers
