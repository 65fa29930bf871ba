"""Ids are never reused: a deleted schedule's (channel's, user's...) id is not handed out
again, on a new SQLite catalog, on one upgraded from before (migration 0011, which keeps
every row), and on a PostgreSQL catalog."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
import redis as redis_lib
from alembic import command
from sqlalchemy import Integer, create_engine

from services import catalog_upgrade, schedules
from services.extensions import db
from services.models import Backup, Delivery, Schedule, ScheduleRun

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data

SCHEDULES = "/api/system/backup/schedule"
CHANNELS = "/api/system/notifications/channels"


def create_and_delete_three_then_one_more(api, path: str, body) -> int:
    for n in (1, 2, 3):
        created = api.post(path, json=body(n))
        assert created.status_code == 201, created.get_json()
        assert created.get_json()["id"] == n
        assert api.delete(f"{path}/{n}").status_code == 200
    return api.post(path, json=body(4)).get_json()["id"]


@pytest.mark.parametrize(("path", "body"), [
    (SCHEDULES, lambda n: {"name": f"s{n}", "frequency": "daily", "time": "02:00"}),
    (CHANNELS, lambda n: {"name": f"c{n}", "kind": "webhook",
                          "config": {"url": f"http://127.0.0.1:9/{n}"}}),
], ids=["schedules", "channels"])
def test_a_deleted_id_is_not_handed_out_again(api, path, body):
    assert create_and_delete_three_then_one_more(api, path, body) == 4


def test_every_table_with_an_integer_id_is_autoincrement(app, tmp_path):
    tables = [table.name for table in db.metadata.sorted_tables
              if [type(column.type) for column in table.primary_key.columns] == [Integer]]
    assert {"schedules", "users", "api_tokens", "notification_channels", "deliveries",
            "destinations", "activity"} <= set(tables)
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as conn:
        sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    assert [name for name in tables if "AUTOINCREMENT" not in sql[name]] == []


# ---- a catalog upgraded to 0011 -------------------------------------------------------

ROWS_AT_0010 = [
    *(f"INSERT INTO schedules (id, name, type, frequency, time, timezone, retention_days, "
      f"keep_at_least, verify, enabled, created_at) VALUES ({n}, 's{n}', 'full', 'daily', "
      f"'02:00', 'UTC', 7, 1, 'integrity', 1, '2026-12-01 10:00:00')" for n in (1, 2, 3)),
    "INSERT INTO schedule_runs (id, schedule_id, slot, fired_at, outcome) "
    "VALUES (1, 3, '2026-12-02T02:00:00+00:00', '2026-12-02 02:00:00', 'started')",
    "INSERT INTO backups (id, target, database, type, status, compress, filename, origin, "
    "verification, created_at, schedule_id) VALUES ('backup-2026-12-02T02-00-00-000Z', "
    "'default', 'shop', 'full', 'completed', 1, 'f.dump.zst', 'schedule', 'valid', "
    "'2026-12-02 02:00:00', 3)",
    "INSERT INTO notification_channels (id, name, kind, config, enabled, created_at) "
    "VALUES (1, 'hook', 'webhook', '{}', 1, '2026-12-01 10:00:00')",
    "INSERT INTO alerts (id, key, severity, message, started_at) "
    "VALUES (1, 'backup-failed', 'critical', 'a backup failed', '2026-12-02 02:00:00')",
    "INSERT INTO deliveries (id, channel_id, alert_id, event, status, attempts, created_at) "
    "VALUES (1, 1, 1, 'fired', 'sent', 1, '2026-12-02 02:00:01')",
]


def app_on(catalog_url: str, protected_url: str, redis_url: str):
    from app import create_app

    redis_lib.Redis.from_url(redis_url).flushdb()
    return create_app({"DATABASE_URL": protected_url, "METADATA_DATABASE_URL": catalog_url,
                       "REDIS_URL": redis_url, "SECRET_KEY": "k" * 40, "TESTING": True})


def test_an_upgraded_sqlite_catalog_keeps_its_rows_and_reuses_no_id(
        tmp_path, empty_database, redis_url):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(catalog_upgrade._config(connection), "0010_capture_counts")
        for statement in ROWS_AT_0010:
            connection.exec_driver_sql(statement)
    engine.dispose()

    app = app_on(url, empty_database, redis_url)
    with app.app_context():
        [run] = db.session.scalars(db.select(ScheduleRun))
        [backup] = db.session.scalars(db.select(Backup))
        [delivery] = db.session.scalars(db.select(Delivery))
        assert (run.schedule_id, backup.schedule_id) == (3, 3)
        assert (delivery.channel_id, delivery.alert_id, delivery.status) == (1, 1, "sent")
        schedules.delete_schedule(3)
        assert schedules.create_schedule({"name": "s4", "frequency": "daily"}).id == 4
        assert db.session.scalars(db.select(ScheduleRun)).all() == []  # went with schedule 3
        db.engine.dispose()


# ---- a PostgreSQL catalog -------------------------------------------------------------

@pytest.fixture
def pg_catalog(pg_server) -> Iterator[str]:
    name = "ids_catalog"
    pg_server.drop_database(name)
    url = pg_server.create_database(name)
    yield url.replace("postgresql://", "postgresql+psycopg://")
    pg_server.drop_database(name)


def test_a_postgresql_catalog_reuses_no_id(pg_catalog, empty_database, redis_url):
    app = app_on(pg_catalog, empty_database, redis_url)
    with app.app_context():
        for n in (1, 2, 3):
            schedule = schedules.create_schedule({"name": f"s{n}", "frequency": "daily"})
            assert schedule.id == n
            schedules.delete_schedule(n)
        assert schedules.create_schedule({"name": "s4", "frequency": "daily"}).id == 4
        assert [row.id for row in db.session.scalars(db.select(Schedule))] == [4]
        db.engine.dispose()
