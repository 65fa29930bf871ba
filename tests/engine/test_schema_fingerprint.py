"""The schema fingerprint: the same for the same schema whatever the data, different after
any DDL that a restore would miss."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from pgbackup import ConnectionInfo
from pgbackup.schema_fingerprint import schema_fingerprint
from pgbackup.snapshot import exported_snapshot


def fingerprint(url: str) -> str:
    conn = ConnectionInfo.from_url(url)
    with exported_snapshot(conn) as snapshot:
        return schema_fingerprint(conn, snapshot.snapshot_id)


@pytest.fixture
def shop(scratch_db: Callable[[], str]) -> str:
    url = scratch_db()
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("CREATE TABLE rental (id int PRIMARY KEY, customer text NOT NULL)")
        pg.execute("INSERT INTO rental VALUES (1, 'ann')")
    return url


def test_data_changes_keep_the_fingerprint(shop: str) -> None:
    before = fingerprint(shop)
    with psycopg.connect(shop, autocommit=True) as pg:
        pg.execute("INSERT INTO rental SELECT n, 'c' || n FROM generate_series(2, 500) n")
        pg.execute("UPDATE rental SET customer = 'bob' WHERE id = 1")
    assert fingerprint(shop) == before
    assert len(before) == 64


@pytest.mark.parametrize("ddl", [
    "ALTER TABLE rental ADD COLUMN returned timestamptz",
    "CREATE INDEX ON rental (customer)",
    "CREATE TABLE payment (id int)",
    "ALTER TABLE rental REPLICA IDENTITY FULL",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "COMMENT ON TABLE rental IS 'the rentals'",
])
def test_ddl_changes_the_fingerprint(shop: str, ddl: str) -> None:
    before = fingerprint(shop)
    with psycopg.connect(shop, autocommit=True) as pg:
        pg.execute(ddl)
    assert fingerprint(shop) != before
