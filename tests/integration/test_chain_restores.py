"""Restoring chains through the API with a real worker (issue #14): an incremental restores
its whole chain, a pointInTime restores the state at that moment, the dry run names the
chain and its window, a moment outside every window is a 409, an overwrite takes its
safety backup, and restore-level verification of an incremental replays its chain.

Pagila under a write workload between the backups: updates (with BEFORE UPDATE
triggers), deletes, inserts, a payment moving to the next month's partition, sequence use
and a rolled-back transaction, and a table without a key; marker rows whose commit times
are read right after each commit (synchronous_commit on: decoding reads flushed WAL
only)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest

from tests.engine.helpers import copy_public_schema_owner
from tests.support.backups import backed_up, restore
from tests.support.capture import write
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer

BACKUP = "/api/system/backup"


@pytest.fixture
def databases(pg_server: PostgresServer) -> Iterator[list[str]]:
    """Names for the databases restores create, dropped afterwards."""
    token = secrets.token_hex(3)
    names = [f"chainrest_{token}_{n}" for n in range(6)]
    yield names
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture(autouse=True)
def capture_on(capture: str) -> None:
    """Change capture on (see the ``capture`` fixture), a table for the marker rows and one
    without a key (before the full: later ones would be a schema change)."""
    write(capture, "CREATE TABLE chain_markers (id serial PRIMARY KEY, label text NOT NULL)",
          "CREATE TABLE chain_notes (note text)")


def workload(url: str, round_: int) -> None:
    """One round of the shop's writes, each statement its own transaction."""
    write(url,
          f"UPDATE rental SET return_date = now() WHERE rental_id BETWEEN {round_ * 40 + 1} "
          f"AND {round_ * 40 + 40}",  # BEFORE UPDATE trigger last_updated
          "DELETE FROM payment WHERE payment_id IN (SELECT payment_id FROM payment "
          f"ORDER BY payment_id OFFSET {round_ * 10} LIMIT 3)",
          f"INSERT INTO actor (first_name, last_name) VALUES ('ROUND', 'R{round_}')",
          f"INSERT INTO chain_notes VALUES ('round {round_}')",  # copied whole
          # into the next month's partition
          "UPDATE payment SET payment_date = payment_date + interval '1 month', amount = 1.23 "
          "WHERE payment_id = (SELECT min(payment_id) FROM payment_p2022_02)",
          "SELECT nextval('film_film_id_seq')",
          "BEGIN", "DELETE FROM film_actor WHERE film_id = 1", "ROLLBACK")


def marker(url: str, label: str) -> tuple[str, dict]:
    """Commit a marker row; its moment (read just after the commit) and the tables then."""
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET synchronous_commit = on")
        pg.execute("INSERT INTO chain_markers (label) VALUES (%s)", [label])
        at: datetime = pg.execute("SELECT clock_timestamp()").fetchone()[0]
    return at.isoformat(), table_fingerprints(url)


def restored(api, run_worker, **body) -> dict:
    """A completed restore, as the API shows it with its result."""
    started = restore(api, **body)
    assert started.status_code == 202, started.get_json()
    run_worker()
    done = api.get(f"{BACKUP}/restore/{started.get_json()['restoreId']}").get_json()
    assert done["status"] == "completed", done["error"]
    return done


def url_of(pagila: str, name: str) -> str:
    return pagila.rsplit("/", 1)[0] + "/" + name


UNKEYED = "public.chain_notes"


def keyed(state: dict) -> dict:
    return {table: value for table, value in state.items() if table != UNKEYED}


def test_a_chain_restores_to_its_end_and_to_moments(
        api, run_worker, pagila, databases):
    full = backed_up(api, run_worker)
    notes_at_full = table_fingerprints(pagila)[UNKEYED]
    workload(pagila, 1)
    at_a, state_a = marker(pagila, "a")
    workload(pagila, 2)  # after a, in the same incremental: a falls inside it
    first = backed_up(api, run_worker, type="incremental")
    notes_at_first = table_fingerprints(pagila)[UNKEYED]
    workload(pagila, 3)
    at_b, state_b = marker(pagila, "b")
    workload(pagila, 4)
    at_c, state_c = marker(pagila, "c")  # the last commit before the second incremental
    second = backed_up(api, run_worker, type="incremental")
    assert (first["parentId"], second["parentId"]) == (full["id"], first["id"])
    ids = [full["id"], first["id"], second["id"]]

    # The last incremental restores its whole chain, equal to the source.
    done = restored(api, run_worker, backupId=second["id"], targetDatabase=databases[0])
    assert done["backupId"] == second["id"] and done["pointInTime"] is None
    chain = done["result"]["chain"]
    assert (chain["full"], chain["replayed"]) == (full["id"], ids[1:])
    assert chain["comparedWith"] == second["id"] and done["result"]["matchesManifest"]
    copy = url_of(pagila, databases[0])
    copy_public_schema_owner(pagila, copy)
    assert schema_dump(copy) == schema_dump(pagila)
    assert table_fingerprints(copy) == table_fingerprints(pagila)

    # Three moments, each restored to the state then; inside an incremental, the table
    # without a key keeps the previous backup's state (and the result says so).
    done = restored(api, run_worker, backupId=full["id"], pointInTime=at_a,
                    targetDatabase=databases[1])  # the chain of the full, to a moment
    assert done["backupId"] == first["id"] and done["pointInTime"] is not None
    assert done["result"]["chain"]["comparedWith"] is None  # inside the first incremental
    assert done["result"]["chain"]["tablesAtPreviousState"] == [UNKEYED]
    assert any(UNKEYED in warning for warning in done["result"]["warnings"])
    assert [c["name"] for c in done["result"]["checks"]] == ["point-in-time"]
    state = table_fingerprints(url_of(pagila, databases[1]))
    assert keyed(state) == keyed(state_a) and state[UNKEYED] == notes_at_full
    done = restored(api, run_worker, pointInTime=at_b, targetDatabase=databases[2])
    assert done["backupId"] == second["id"]
    assert done["result"]["chain"]["replayed"] == ids[1:]
    state = table_fingerprints(url_of(pagila, databases[2]))
    assert keyed(state) == keyed(state_b) and state[UNKEYED] == notes_at_first
    done = restored(api, run_worker, pointInTime=at_c, targetDatabase=databases[3])
    assert done["result"]["chain"]["comparedWith"] == second["id"]  # its end: compared
    assert done["result"]["matchesManifest"]
    assert table_fingerprints(url_of(pagila, databases[3])) == state_c

    # The dry run names the chain, its window and the replay.
    answer = restore(api, pointInTime=at_b, dryRun=True, targetDatabase=databases[4])
    assert answer.status_code == 200, answer.get_json()
    analysis = answer.get_json()["analysis"]
    assert analysis["canRestore"], analysis["errors"]
    assert [link["backupId"] for link in analysis["chain"]] == ids
    assert [link["type"] for link in analysis["chain"]] == ["full", "incremental", "incremental"]
    assert analysis["chain"][2]["startLsn"] == second["capture"]["startLsn"]
    assert analysis["chain"][2]["coversUntil"] == second["capture"]["coversUntil"]
    assert analysis["pointInTime"]["replayed"] == ids
    assert analysis["pointInTime"]["inside"] == second["id"]
    assert analysis["pointInTime"]["tablesAtPreviousState"] == [UNKEYED]
    window = analysis["window"]
    assert window["latest"] == second["capture"]["coversUntil"]
    assert window["earliest"] >= full["capture"]["consistentAt"]
    assert analysis["backup"]["id"] == full["id"]  # the full's analysis, as for a full
    answer = restore(api, backupId=first["id"], dryRun=True, targetDatabase=databases[4])
    analysis = answer.get_json()["analysis"]
    assert [link["backupId"] for link in analysis["chain"]] == ids[:2]
    assert analysis["pointInTime"] is None

    # A moment outside every chain's reach: 409, with the windows.
    refused = restore(api, pointInTime="2000-01-01T00:00:00Z", targetDatabase=databases[4])
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "point_in_time_unreachable"
    assert f"{window['earliest']} to {window['latest']}" in error["message"]

    # Restore-level verification replays the chain and compares with the manifest.
    started = api.post(f"{BACKUP}/verify", json={"backupId": second["id"], "level": "restore"})
    assert started.status_code == 202, started.get_json()
    run_worker()
    verified = api.get(f"{BACKUP}/{second['id']}").get_json()
    assert verified["verification"] == "valid", verified["verificationResult"]
    checks = {c["name"]: c for c in verified["verificationResult"]["checks"]}
    assert checks["chain"]["ok"] and "test-restore" in checks
    assert "2 incremental(s) replayed" in checks["test-restore"]["detail"]
    assert "table public.chain_markers" in checks


def test_an_incremental_restores_over_the_database_after_a_safety_backup(
        api, run_worker, pagila):
    backed_up(api, run_worker)
    workload(pagila, 1)
    incremental = backed_up(api, run_worker, type="incremental")
    then = table_fingerprints(pagila)
    workload(pagila, 2)  # lost by the restore, kept by the safety backup

    done = restored(api, run_worker, backupId=incremental["id"], confirmDataLoss=True)
    assert done["mode"] == "overwrite" and done["result"]["matchesManifest"]
    assert done["result"]["chain"]["replayed"] == [incremental["id"]]
    safety = api.get(f"{BACKUP}/{done['safetyBackupId']}").get_json()
    assert safety["status"] == "completed" and safety["origin"] == "safety"
    assert table_fingerprints(pagila) == then
