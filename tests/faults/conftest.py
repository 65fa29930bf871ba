"""Fixtures of the fault suite.

The suite uses the session's private PostgreSQL (``pg_server``), a fresh Pagila copy per
test (``pagila``) and the ``app`` of tests/conftest.py. A module may override two of its
fixtures: ``backup_dir`` (test_disk_full.py puts it on a tiny tmpfs) and ``redis_url``
(test_redis.py gives it a Redis of its own to stop and flush, leaving the session's Redis
alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import Fault, protected_state


@pytest.fixture(scope="session")
def pristine_state(pg_server, pagila_template: str) -> tuple[str, dict]:
    """Schema dump and table fingerprints of Pagila: every test's protected database is a
    fresh copy of the template, so this is its state until the test changes it."""
    return protected_state(pg_server.url(pagila_template))


@pytest.fixture
def fault(app, pg_server, api, run_worker, pristine_state, tmp_path: Path,
          monkeypatch) -> Iterator[Fault]:
    """The test's context: gated tool wrappers, tagged workers, the invariants' baseline.
    Teardown kills whatever the test started and drops databases it left."""
    monkeypatch.setenv("WORKER_LOG", str(tmp_path / "worker.log"))
    context = Fault(app=app, pg_server=pg_server, api=api, run_worker=run_worker,
                    tmp_path=tmp_path, untouched=pristine_state)
    yield context
    context.cleanup()
