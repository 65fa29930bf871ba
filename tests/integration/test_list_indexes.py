"""The backups list at any size: each of its queries is an index walk, on a SQLite and on a
PostgreSQL catalog (the plans of the statements list_backups really runs), and the API's
keyset cursor (``after``) pages exactly as page/perPage does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event, insert

from tests.support.backups import BACKUP
from tests.support.catalog_rows import START, backup_id_at

ROWS = 10_000
CURSOR = backup_id_at(START - timedelta(minutes=500))
# The views whose order has an index, and that index: every backup, one type, one status,
# and past a cursor.
VIEWS = {"all": ({}, "ix_backups_created_at_id"),
         "type": ({"kind": "full"}, "ix_backups_type_created_at_id"),
         "status": ({"status": "failed"}, "ix_backups_status_created_at_id"),
         "cursor": ({"after": CURSOR}, "ix_backups_created_at_id"),
         "type-cursor": ({"kind": "full", "after": CURSOR}, "ix_backups_type_created_at_id")}


def fill(count: int) -> list[str]:
    """``count`` backups in the app's catalog, one a minute back from START, every seventh
    failed, every third incremental; returns their ids, newest first."""
    from services.extensions import db
    from services.models import Backup

    rows = [{"id": backup_id_at(START - timedelta(minutes=number)), "database": "shop",
             "type": "incremental" if number % 3 == 0 else "full",
             "status": "failed" if number % 7 == 0 else "completed", "compress": True,
             "origin": "manual", "size": 1000 + number, "verification": "valid",
             "created_at": START - timedelta(minutes=number)} for number in range(count)]
    db.session.execute(insert(Backup), rows)
    db.session.commit()
    return [row["id"] for row in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_app(request, tmp_path, pg_server) -> Iterator:
    """An app whose catalog is SQLite or PostgreSQL, with ROWS backups in it."""
    from app import create_app
    from services.extensions import db

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    else:
        name = f"catalog_{abs(hash(request.node.nodeid)) % 10**8}"
        pg_server.drop_database(name)
        url = pg_server.create_database(name)
    app = create_app({"DATABASE_URL": pg_server.url("postgres"), "METADATA_DATABASE_URL": url,
                      "BACKUP_DIR": str(tmp_path / "backups"), "SECRET_KEY": "k" * 40,
                      "TESTING": True})
    with app.app_context():
        fill(ROWS)
        if request.param == "postgresql":
            with db.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE backups")
        yield app
        db.engine.dispose()
    if request.param == "postgresql":
        pg_server.drop_database(name)


def page_statement(view: dict) -> tuple[str, object]:
    """The SQL and parameters of the page query list_backups runs for ``view``."""
    from services import backups
    from services.extensions import db

    seen: list[tuple[str, object]] = []

    def executed(_conn, _cursor, statement, parameters, *_args) -> None:
        if re.search(r"\bFROM backups\b.*\bORDER BY\b", statement, re.S):
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", executed)
    try:
        page = backups.list_backups(per_page=50, **view)
    finally:
        event.remove(db.engine, "before_cursor_execute", executed)
    assert len(page.backups) == 50
    assert len(seen) == 1, seen
    return seen[0]


def plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


@pytest.mark.parametrize(("view", "index"), VIEWS.values(), ids=VIEWS.keys())
def test_each_list_query_walks_an_index(catalog_app, view, index):
    from services.extensions import db

    statement, parameters = page_statement(view)
    with db.engine.connect() as connection:
        if db.engine.dialect.name == "sqlite":
            steps = [row[3] for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters)]
            assert any(re.search(rf"USING (COVERING )?INDEX {index}\b", step)
                       for step in steps), steps
            assert not any("TEMP B-TREE" in step for step in steps), steps  # no sort
        else:
            raw = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}",
                                             parameters).scalar()
            nodes = list(plan_nodes((raw if isinstance(raw, list) else json.loads(raw))[0]
                                    ["Plan"]))
            kinds = [node["Node Type"] for node in nodes]
            assert not any("Sort" in kind for kind in kinds), kinds
            scans = [node.get("Index Name", "") for node in nodes
                     if node["Node Type"] in ("Index Scan", "Index Only Scan")]
            # PostgreSQL weighs them: a type that is most of the catalog is read from the
            # created_at index, filtered as it goes. Either way, an index walk and no sort.
            assert {index, "ix_backups_created_at_id"} & set(scans), kinds


def test_the_cursor_pages_as_page_and_per_page_do(app, api):
    with app.app_context():
        ids = fill(23)
    fulls = [backup_id for number, backup_id in enumerate(ids) if number % 3]
    by_page = [api.get(BACKUP, query_string={"type": "full", "perPage": 5, "page": page})
               .get_json() for page in range(1, 5)]
    assert [row["id"] for body in by_page for row in body["backups"]] == fulls

    seen, after = [], None
    while True:
        body = api.get(BACKUP, query_string={"type": "full", "perPage": 5,
                                             **({"after": after} if after else {})}).get_json()
        assert body["total"] == len(fulls)
        seen += [row["id"] for row in body["backups"]]
        if body["nextAfter"] is None:
            break
        assert body["nextAfter"] == seen[-1]
        after = body["nextAfter"]
    assert seen == fulls


def test_a_deleted_cursor_still_marks_the_place(app, api):
    from services.extensions import db
    from services.models import Backup

    with app.app_context():
        ids = fill(6)
        db.session.delete(db.session.get(Backup, ids[2]))
        db.session.commit()
    body = api.get(BACKUP, query_string={"after": ids[2]}).get_json()
    assert [row["id"] for row in body["backups"]] == ids[3:]
    assert body["nextAfter"] is None


@pytest.mark.parametrize(("args", "code"), [
    ({"after": "backup-1"}, "invalid_id"),
    ({"after": backup_id_at(START), "page": 2}, "invalid_filter"),
])
def test_a_bad_cursor_is_a_readable_400(app, api, args, code):
    response = api.get(BACKUP, query_string=args)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
