"""A chain taken under a concurrent write workload on Pagila (inserts, updates that fire
BEFORE UPDATE triggers, deletes, rows moving between payment partitions, rollbacks,
savepoints, sequence use) during the full and the incrementals: the full and every
incremental restored equal the source at the last incremental, schema and every table."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest

from pgbackup import ConnectionInfo, LocalStorage, Manifest, run_dump
from pgbackup.chain_restore import restore_chain
from pgbackup.incremental import run_incremental_to
from pgbackup.slots import drop_slot
from pgbackup.targets import Target
from tests.engine.helpers import copy_public_schema_owner, drop_slots, unique_backup_id
from tests.support.dbcompare import schema_dump, table_fingerprints
from tests.support.workers import wait_for
from tools.localservices import PostgresServer

OPERATIONS = (
    "INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id) "
    "VALUES (clock_timestamp(), 1 + {i} % 4000, 1 + {i} % 500, 1)",
    "UPDATE rental SET return_date = clock_timestamp() WHERE rental_id = 1 + {i} % 16000",
    "UPDATE payment SET payment_date = payment_date + interval '1 month' WHERE payment_id = "
    "(SELECT payment_id FROM payment_p2022_02 ORDER BY payment_id LIMIT 1)",
    "DELETE FROM payment WHERE payment_id = (SELECT min(payment_id) FROM payment_p2022_05)",
    "UPDATE customer SET active = 1 - active WHERE customer_id = 1 + {i} % 599",
    "SELECT nextval('customer_customer_id_seq')",
    "UPDATE actor SET last_name = 'L{i}' WHERE actor_id = 1 + {i} % 200; SAVEPOINT s; "
    "UPDATE actor SET first_name = 'GONE' WHERE actor_id = 1; ROLLBACK TO SAVEPOINT s",
)


class Workload(threading.Thread):
    """Writes in short transactions until stopped; every fifth one is rolled back (each
    kind of operation is both committed and rolled back along the way)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.done, self.error = url, 0, None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as pg:
                pg.execute("SET synchronous_commit = on")  # decoding reads flushed WAL only
                while not self.stopping.is_set():
                    self._one(pg, self.done)
                    self.done += 1
        except Exception as exc:  # the test reports it
            self.error = exc

    def _one(self, pg: psycopg.Connection, i: int) -> None:
        pg.execute("BEGIN")
        for statement in OPERATIONS[i % len(OPERATIONS)].format(i=i).split("; "):
            pg.execute(statement)
        pg.execute("ROLLBACK" if i % 5 == 4 else "COMMIT")

    def after(self, more: int) -> None:
        """Wait until ``more`` further transactions are done."""
        target = self.done + more
        wait_for(lambda: self.done >= target or self.error is not None)
        assert self.error is None, self.error


@pytest.fixture
def shop(pg_server: PostgresServer, pagila_template: str, slot_prefix: str) -> Iterator[str]:
    name = f"workload_{secrets.token_hex(4)}"
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pagila_template}"')
    yield pg_server.url(name)
    drop_slots(pg_server, slot_prefix)  # before the database: its slots would keep it
    pg_server.drop_database(name)


def test_a_chain_taken_under_writes_restores_to_the_source(
        shop: str, slot_prefix: str, storage: LocalStorage,
        scratch_db: Callable[[], str]) -> None:
    conn = ConnectionInfo.from_url(shop)
    slots = iter(f"{slot_prefix}_{n}" for n in range(10))
    workload = Workload(shop)
    workload.start()
    try:
        workload.after(50)
        chain: list[Manifest] = [run_dump(conn, storage, unique_backup_id(storage), "full",
                                          capture_slot=next(slots))]
        for _ in range(2):
            workload.after(150)
            chain.append(_incremental(conn, storage, chain[-1], next(slots)))
    finally:
        workload.stopping.set()
        workload.join()
    assert workload.error is None, workload.error
    chain.append(_incremental(conn, storage, chain[-1], next(slots)))  # the last writes

    captured = sum(manifest.capture.transactions for manifest in chain[1:])
    assert captured >= 150  # of the 350+ transactions, those committed with a change
    tables = set().union(*(manifest.capture.table_changes for manifest in chain[1:]))
    assert {"public.rental", "public.customer", "public.actor", "public.payment_p2022_03",
            "public.payment_p2022_05"} <= tables
    restored = scratch_db()
    restore_chain(ConnectionInfo.from_url(restored), [(storage, m) for m in chain], None,
                  None, no_owner=True)
    copy_public_schema_owner(shop, restored)
    assert schema_dump(restored) == schema_dump(shop)
    assert table_fingerprints(restored) == table_fingerprints(shop)
    with psycopg.connect(shop) as source, psycopg.connect(restored) as copy:
        query = "SELECT last_value FROM customer_customer_id_seq"
        assert copy.execute(query).fetchone() == source.execute(query).fetchone()


def _incremental(conn: ConnectionInfo, storage: LocalStorage, parent: Manifest,
                 slot: str) -> Manifest:
    """The next incremental; the parent's slot is dropped once it is stored, as the app
    does (services.capture.retire)."""
    [copy] = run_incremental_to(conn, [Target("local", storage)], unique_backup_id(storage),
                                parent, slot)
    assert copy.manifest is not None, copy.error
    assert parent.capture is not None
    drop_slot(conn, parent.capture.slot)
    return copy.manifest
