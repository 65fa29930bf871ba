"""Replication slots of change capture on a real PostgreSQL: live or stale from the catalog,
dropped when stale (by hand and by the daily clean-up), watched by health, alerts and
metrics, listed and dropped from the CLI.

The slots are made with pg_create_logical_replication_slot() in the protected database,
named as a backup would name them, for made-up backups (unique per test: slot names are
server-wide). Every slot a test makes is dropped when it ends, failed or not: a leftover
slot keeps WAL on the shared server.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest

from jobs.schedule import run_cleanup
from services import alerts, capture_slots
from services.capture_slots import SlotView, slot_name_for, slots_report
from services.errors import CatalogError
from services.extensions import db
from services.models import ActivityEvent, Backup, Schedule, utcnow
from services.schedules import delete_schedule
from tests.support.health import checks
from tests.support.metrics import scrape, value

MakeSlot = Callable[..., str]


@pytest.fixture
def make_slot(app, pagila, empty_database) -> Iterator[MakeSlot]:
    """make_slot(backup_id) creates the slot that backup would own, in the protected
    database (or in ``url``); an orphan one without a backup id. All are dropped after,
    before the databases themselves (hence the dependency on empty_database)."""
    made: list[tuple[str, str]] = []

    def make(backup_id: str | None = None, url: str = pagila) -> str:
        name = slot_name_for(backup_id) if backup_id else f"pgbackup_orphan_{secrets.token_hex(6)}"
        made.append((url, name))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')",
                         (name,))
        return name

    yield make
    for url, name in made:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                         " WHERE slot_name = %s", (name,))


def new_id(label: str) -> str:
    return f"backup-{secrets.token_hex(4)}-{label}"


def add_backup(app, backup_id: str, *, kind: str = "full", status: str = "completed",
               parent: str | None = None, names_slot: bool = True, origin: str = "manual",
               schedule_id: int | None = None) -> None:
    with app.app_context():
        db.session.add(Backup(
            id=backup_id, database="pagila", type=kind, status=status, parent_id=parent,
            slot_name=slot_name_for(backup_id) if names_slot else None, origin=origin,
            schedule_id=schedule_id, created_at=utcnow(),
            finished_at=None if status == "running" else utcnow()))
        db.session.commit()


def write_wal(url: str) -> None:
    """A few MB of WAL, which every slot made before it keeps."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE filler_{secrets.token_hex(4)} AS "
                     "SELECT g, md5(g::text) AS h FROM generate_series(1, 50000) g")


def report(app) -> dict[str, SlotView]:
    with app.app_context():
        return {view.name: view for view in slots_report()}


def server_slots(pg_server) -> set[str]:
    with pg_server.connect() as conn:
        return {row[0] for row in conn.execute("SELECT slot_name FROM pg_replication_slots")}


def test_slot_names_follow_backup_ids():
    assert slot_name_for("backup-2024-01-15T10:30:00.000Z") == (
        "pgbackup_backup_2024_01_15t10_30_00_000z")
    assert slot_name_for("backup-2024-01-15T10-30-00-000Z") == (
        "pgbackup_backup_2024_01_15t10_30_00_000z")


def test_the_report_tells_live_from_stale(app, pagila, make_slot):
    full, incremental, failed, running = (new_id(label) for label in
                                          ("full", "incr", "failed", "running"))
    add_backup(app, full)
    add_backup(app, incremental, kind="incremental", parent=full)
    add_backup(app, failed, status="failed")
    add_backup(app, running, status="running", names_slot=False)  # its job makes the slot
    names = {backup_id: make_slot(backup_id) for backup_id in
             (full, incremental, failed, running)}
    write_wal(pagila)

    views = report(app)

    assert {name: (views[name].state, views[name].backup_id, views[name].chain_id)
            for name in names.values()} == {
        names[full]: ("stale", full, full),
        names[incremental]: ("live", incremental, full),
        names[failed]: ("stale", failed, failed),
        names[running]: ("live", running, running),
    }
    assert f"backup {incremental} has taken its chain over" in views[names[full]].reason
    assert "end of its chain" in views[names[incremental]].reason
    assert "failed" in views[names[failed]].reason
    assert "running" in views[names[running]].reason
    assert all(views[name].retained_wal_bytes > 0 for name in names.values())


def test_a_retired_chain_makes_its_slot_stale(app, make_slot):
    app.config["CAPTURE_SLOT_MAX_IDLE_DAYS"] = 7
    with app.app_context():
        long_ago, lately = utcnow() - timedelta(days=10), utcnow() - timedelta(days=2)
        schedules = [Schedule(name=f"s-{secrets.token_hex(3)}", frequency="daily",
                              time="02:00", enabled=False, created_at=long_ago,
                              last_run_at=ran) for ran in (long_ago, lately, long_ago)]
        db.session.add_all(schedules)
        db.session.commit()
        disabled_long, disabled_lately, deleted = (schedule.id for schedule in schedules)
    ids = {label: new_id(label) for label in ("old", "recent", "orphaned")}
    for label, schedule_id in zip(ids, (disabled_long, disabled_lately, deleted),
                                  strict=True):
        add_backup(app, ids[label], origin="schedule", schedule_id=schedule_id)
        make_slot(ids[label])
    with app.app_context():
        delete_schedule(deleted)

    views = {view.backup_id: view for view in report(app).values()}

    assert {backup_id: views[backup_id].state for backup_id in ids.values()} == {
        ids["old"]: "stale", ids["recent"]: "live", ids["orphaned"]: "stale"}
    assert "is disabled and has not run for more than 7 days" in views[ids["old"]].reason
    assert "its schedule was deleted" in views[ids["orphaned"]].reason


def test_the_clean_up_drops_only_stale_slots_of_the_protected_database(
        app, pg_server, empty_database, make_slot):
    live = new_id("live")
    add_backup(app, live)
    live_slot, orphan = make_slot(live), make_slot()
    elsewhere = make_slot(new_id("elsewhere"), url=empty_database)  # not the app's database

    assert set(report(app)) == {live_slot, orphan}
    with app.app_context():
        result = run_cleanup()
        events = db.session.scalars(
            db.select(ActivityEvent).where(ActivityEvent.action == "slot.drop")).all()

    assert result["slotsDropped"] == [orphan]
    assert {live_slot, elsewhere} <= server_slots(pg_server)
    assert orphan not in server_slots(pg_server)
    assert [(event.actor, event.target, event.outcome) for event in events] == [
        ("retention", orphan, "ok")]
    assert events[0].detail.startswith("stale: no backup in the catalog names it")
    assert "of WAL" in events[0].detail


def test_a_live_slot_is_dropped_by_hand_only_with_force(app, pg_server, make_slot):
    live = new_id("live")
    add_backup(app, live)
    name = make_slot(live)

    with app.app_context(), pytest.raises(CatalogError) as refused:
        capture_slots.drop(name, actor="admin")
    assert refused.value.status == 409 and refused.value.code == "slot_live"
    assert "ends its chain" in refused.value.message
    assert "next incremental backup starts a new chain" in refused.value.message
    assert name in server_slots(pg_server)

    with app.app_context():
        dropped = capture_slots.drop(name, actor="admin", force=True)
    assert dropped.live and name not in server_slots(pg_server)


def test_health_warns_then_turns_critical_with_the_slot_and_its_fix(app, api, pagila,
                                                                      make_slot):
    live, orphan_backup = new_id("live"), new_id("gone")
    add_backup(app, live)
    live_slot, stale_slot = make_slot(live), make_slot(orphan_backup)
    write_wal(pagila)
    smallest = min(report(app)[name].retained_wal_bytes for name in (live_slot, stale_slot))

    app.config.update(SLOT_WAL_WARNING_BYTES=2**61, SLOT_WAL_CRITICAL_BYTES=2**62)
    check = checks(app)["change-capture"]
    assert check.status == "ok", check.reason
    assert check.data["possible"] is True
    assert {slot["name"]: slot["state"] for slot in check.data["slots"]} == {
        live_slot: "live", stale_slot: "stale"}

    # WAL only grows, so a threshold under what each slot kept a moment ago stays crossed.
    app.config.update(SLOT_WAL_WARNING_BYTES=smallest // 2)
    check = checks(app)["change-capture"]
    assert check.status == "warning", check.reason
    assert f"Replication slot {live_slot} keeps" in check.reason
    assert "over the warning threshold" in check.reason
    assert f"flask --app app slots drop {stale_slot} (nothing needs it)" in check.reason
    assert "Run an incremental backup" in check.reason

    app.config.update(SLOT_WAL_CRITICAL_BYTES=smallest // 2 + 1)
    body = api.get("/api/system/health").get_json()
    by_name = {check["name"]: check for check in body["checks"]}
    assert by_name["change-capture"]["status"] == "critical"
    assert "over the critical threshold" in by_name["change-capture"]["reason"]
    assert body["status"] == "critical"

    with app.app_context():
        problem = alerts.desired_problems()["health:change-capture"]
    assert problem.severity == "critical" and live_slot in problem.message


def test_health_explains_why_capture_is_not_possible(app, pg_server, pagila):
    role = f"nocapture_{secrets.token_hex(4)}"
    with pg_server.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        app.config["DATABASE_URL"] = pagila.replace("postgres@", f"{role}@", 1)
        check = checks(app)["change-capture"]
    finally:
        with pg_server.connect() as conn:
            conn.execute(f"DROP ROLE {role}")

    assert check.status == "warning", check.reason
    assert check.data["possible"] is False
    assert [problem["code"] for problem in check.data["problems"]] == ["replication_privilege"]
    assert "full backups start no chain" in check.reason
    assert f"Troubleshooting: ALTER ROLE {role} REPLICATION;" in check.reason


def test_metrics_expose_each_slot(app, api, make_slot):
    live = new_id("live")
    add_backup(app, live)
    live_slot, orphan = make_slot(live), make_slot()

    samples = scrape(api)

    assert value(samples, "pgbackup_replication_slot_live", slot=live_slot) == 1
    assert value(samples, "pgbackup_replication_slot_live", slot=orphan) == 0
    for name in (live_slot, orphan):
        assert value(samples, "pgbackup_replication_slot_retained_wal_bytes", slot=name) > 0


def test_the_cli_lists_and_drops_slots(app, pg_server, pagila, make_slot):
    live = new_id("live")
    add_backup(app, live)
    live_slot, orphan = make_slot(live), make_slot()
    cli = app.test_cli_runner()

    listing = cli.invoke(args=["slots", "list"])
    assert listing.exit_code == 0, listing.output
    lines = {line.split("\t")[0]: line.split("\t") for line in listing.output.splitlines()}
    assert lines[live_slot][1:4] == [pagila.rsplit("/", 1)[1], "live", live]
    assert lines[orphan][2:4] == ["stale", "-"]
    assert lines[live_slot][4].endswith(("B", "KiB", "MiB", "GiB"))
    assert listing.output.splitlines()[-1] == "2 slots, 1 stale"

    refused = cli.invoke(args=["slots", "drop", live_slot])
    assert refused.exit_code == 1 and "is live" in refused.output
    assert live_slot in server_slots(pg_server)

    for args in (["slots", "drop", orphan], ["slots", "drop", live_slot, "--force"]):
        dropped = cli.invoke(args=args)
        assert dropped.exit_code == 0, dropped.output
        assert dropped.output.startswith(f"dropped {args[2]}") and "of WAL" in dropped.output
    assert not {live_slot, orphan} & server_slots(pg_server)

    unknown = cli.invoke(args=["slots", "drop", orphan])
    assert unknown.exit_code == 1 and "no replication slot" in unknown.output
