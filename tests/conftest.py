"""Real services for the whole suite: a private PostgreSQL 15 and a private Redis."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parents[1]
PAGILA_DIR = Path(os.environ.get("PAGILA_DIR", ROOT.parent / "shared" / "datasets" / "pagila"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pagila_template(pg_server: PostgresServer) -> str:
    """A database loaded from ../shared/datasets/pagila, used only as a template."""
    schema = PAGILA_DIR / "pagila-schema.sql"
    data = PAGILA_DIR / "pagila-data.sql.gz"
    if not schema.exists() or not data.exists():
        pytest.fail(f"Pagila dataset not found in {PAGILA_DIR} (set PAGILA_DIR)", pytrace=False)
    pg_server.create_database("pagila_template")
    pg_server.psql("pagila_template", "-f", str(schema))
    pg_server.psql("pagila_template", stdin=gzip.decompress(data.read_bytes()))
    return "pagila_template"


@pytest.fixture
def pagila(pg_server: PostgresServer, pagila_template: str, request) -> Iterator[str]:
    """A fresh copy of Pagila for one test; yields its URL."""
    name = f"pagila_{abs(hash(request.node.nodeid)) % 10**8}"
    pg_server.drop_database(name)
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pagila_template}"')
    yield pg_server.url(name)
    pg_server.drop_database(name)
