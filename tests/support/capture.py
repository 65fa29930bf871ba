"""Change capture in the integration tests: writes the decoder sees at once, and the
chains' slots dropped afterwards (they live on the session's shared server, where a
leftover slot keeps WAL and keeps its database from being dropped)."""

from __future__ import annotations

import psycopg

from pgbackup import ConnectionInfo
from pgbackup.slots import drop_slot, list_slots
from services.capture_slots import SLOT_PREFIX
from tools.localservices import PostgresServer


def write(url: str, *statements: str) -> None:
    """Each statement its own transaction, flushed at once: decoding reads flushed WAL
    only, and the test server commits asynchronously."""
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET synchronous_commit = on")
        for statement in statements:
            pg.execute(statement)


def drop_app_slots(pg_server: PostgresServer, database_url: str) -> None:
    """Drop the app's slots on ``database_url``'s database (and its renamed copies)."""
    server = ConnectionInfo.from_url(pg_server.url())
    database = database_url.rsplit("/", 1)[1]
    for slot in list_slots(server, SLOT_PREFIX):
        if slot.database.startswith(database):
            drop_slot(server, slot.name)
