"""The backups section's table: filters, sort and paging as query parameters, paged by the
catalog database; one backup's detail; and a catalog of 10,000 backups costing what 50 do."""

from __future__ import annotations

import html as html_text
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event

from tests.support.catalog_rows import START, backup_id_at
from tests.support.catalog_rows import add_backups as add_rows

LIST = "/system/backup/list"
ROW = re.compile(r'<tr class="backup-row" id="backup-(backup-[^"]+)">')


def add_backups(app, count: int, first: int = 0, **fields) -> list[str]:
    """tests.support.catalog_rows.add_backups in ``app``'s context."""
    with app.app_context():
        return add_rows(count, first, **fields)


def listed(htmx, **args) -> list[str]:
    """The ids in the table of the list fragment for ``args``, top to bottom."""
    response = htmx.request("GET", LIST, query_string=args)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return ROW.findall(response.get_data(as_text=True))


def test_filters_by_type_and_status_and_keeps_them_in_the_form(app, htmx):
    fulls = add_backups(app, 3)
    failed = add_backups(app, 2, first=3, type="incremental", status="failed", size=None,
                         error="pg_dump: connection refused")
    add_backups(app, 2, first=5, type="incremental")

    assert listed(htmx, type="incremental", status="failed") == failed
    assert listed(htmx, type="full") == fulls
    assert len(listed(htmx)) == 7
    html = htmx.request("GET", LIST, query_string={"type": "incremental", "status": "failed"}
                        ).get_data(as_text=True)
    assert '<option value="incremental" selected>' in html
    assert '<option value="failed" selected>' in html
    # The section reloads itself with the same view, and the summary counts every backup.
    assert f'hx-get="{LIST}?type=incremental&amp;status=failed&amp;seen=' in html
    assert re.search(r'figure-label">Backups</span>\s*<span class="figure-value">7<', html)
    assert "1\N{EN DASH}2 of 2 · page 1 of 1" in html
    assert "pg_dump: connection refused" in html  # a failed row says why, in short
    assert "No backup matches these filters." in htmx.request(
        "GET", LIST, query_string={"type": "schema-only"}).get_data(as_text=True)


def test_sorts_by_created_and_by_size_both_ways(app, htmx):
    newest_first = add_backups(app, 4)  # sizes grow as they get older
    add_backups(app, 1, first=4, size=None, status="running", verification="unverified")
    running = backup_id_at(START - timedelta(minutes=4))

    assert listed(htmx)[:4] == newest_first
    assert listed(htmx, order="asc") == [running, *reversed(newest_first)]
    assert listed(htmx, sort="size") == [*reversed(newest_first), running]  # no size: last
    assert listed(htmx, sort="size", order="asc") == [*newest_first, running]
    html = htmx.request("GET", LIST, query_string={"sort": "size"}).get_data(as_text=True)
    assert 'aria-sort="descending"' in html
    assert f'href="{LIST}?sort=size&amp;order=asc"' in html  # the heading turns it round


def test_pages_through_the_catalog_with_the_apis_paging(app, htmx):
    ids = add_backups(app, 120)

    assert listed(htmx) == ids[:50]
    assert listed(htmx, page=2) == ids[50:100]
    last = htmx.request("GET", LIST, query_string={"page": 3}).get_data(as_text=True)
    assert ROW.findall(last) == ids[100:]
    assert "101\N{EN DASH}120 of 120 · page 3 of 3" in last
    assert f'href="{LIST}?page=2"' in last  # previous
    assert re.search(r'aria-disabled="true">Next .</span>', last)  # no next page: inert
    assert listed(htmx, perPage=7, page=2) == ids[7:14]
    past = htmx.request("GET", LIST, query_string={"page": 9}).get_data(as_text=True)
    assert "Page 9 is past the last one." in past and f'href="{LIST}"' in past


@pytest.mark.parametrize(("args", "message"), [
    ({"type": "everything"}, "type: 'everything' is not one of full, schema-only, incremental"),
    ({"status": "done"}, "status: 'done' is not one of queued, running, completed, failed"),
    ({"sort": "name"}, "sort: 'name' is not one of created, size"),
    ({"order": "up"}, "order: 'up' is not one of desc, asc"),
    ({"page": "0"}, "page: '0' is not a whole number from 1 to 1,000,000"),
    ({"page": "two"}, "page: 'two' is not a whole number from 1 to 1,000,000"),
    ({"perPage": "5000"}, "perPage: '5000' is not a whole number from 1 to 200"),
    ({"page": "\N{ARABIC-INDIC DIGIT ONE}"}, "is not a whole number"),  # int() takes it
])
def test_a_bad_filter_value_is_a_readable_400(client, htmx, args, message):
    fragment = htmx.request("GET", LIST, query_string=args)
    assert fragment.status_code == 400
    body = html_text.unescape(fragment.get_data(as_text=True))
    assert message in body and 'class="alert alert-error"' in body and "<html" not in body
    page = client.get("/system/backup", query_string=args)  # a direct load: a whole page
    assert page.status_code == 400 and message in html_text.unescape(page.get_data(as_text=True))


def test_a_list_url_loaded_directly_is_the_whole_page_with_that_view(app, client, htmx):
    add_backups(app, 3)
    add_backups(app, 1, first=3, type="schema-only")
    page = client.get(LIST, query_string={"type": "schema-only"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and 'id="section-nav"' in html
    assert len(ROW.findall(html)) == 1 and '<option value="schema-only" selected>' in html
    history = client.get(LIST, headers={**htmx.headers, "HX-History-Restore-Request": "true"})
    assert "<html" in history.get_data(as_text=True)  # Back restores a whole page


def test_the_detail_shows_checks_copies_chain_and_restores(app, htmx, run_worker):
    from services.extensions import db
    from services.models import Backup, Restore

    htmx.create()
    run_worker()  # the backup, then its automatic integrity check
    with app.app_context():
        [full] = db.session.query(Backup).all()
        full_id = full.id
        child = backup_id_at(datetime(2030, 1, 1))
        db.session.add(Backup(id=child, database=full.database, type="incremental",
                              status="completed", parent_id=full_id, filename="x.zst",
                              created_at=datetime(2030, 1, 1)))
        db.session.add(Restore(id="restore-2030-01-02T00-00-00-000Z", backup_id=full_id,
                               mode="new-database", target_database="shop_copy",
                               status="completed", duration_ms=4200))
        db.session.commit()

    response = htmx.request("GET", f"/system/backup/backups/{full_id}")
    assert response.status_code == 200
    detail = response.get_data(as_text=True)
    assert "<html" not in detail and 'id="backup-detail-panel"' in detail
    assert 'class="vbadge vbadge-valid">Valid<' in detail
    assert re.search(r"\d+ checks, all passed", detail)
    for name in ("manifest", "sha256", "decompress", "toc"):
        assert re.search(rf'<tr class="check-row check-ok">\s*<td class="check-name">{name}</td>\s*'
                         r'<td class="check-result">.*passed</td>', detail)
    assert re.search(r'<b>local</b>\s*<span class="tag">stored</span>', detail)
    assert f"Continued by <a class=\"filename\" href=\"/system/backup/backups/{child}\"" in detail
    assert "Into a new database" in detail and "shop_copy" in detail and "4.2 s" in detail
    assert f'href="/api/system/backup/{full_id}/download"' in detail
    assert f'hx-get="/system/backup/{full_id}/restore"' in detail
    assert 'name="level"' in detail and 'value="restore"' in detail

    child_detail = htmx.request("GET", f"/system/backup/backups/{child}").get_data(as_text=True)
    assert f'Continues <a class="filename" href="/system/backup/backups/{full_id}"' in child_detail


def test_the_detail_loaded_directly_is_the_whole_page_with_it_open(app, client, htmx):
    [backup_id] = add_backups(app, 1)
    page = client.get(f"/system/backup/backups/{backup_id}", query_string={"type": "full"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert 'id="backup-detail-panel"' in html and 'aria-current="page">Backups<' in html
    # Its Close button goes back to the table's view it was opened from.
    assert f'hx-push-url="{LIST}?type=full"' in html
    assert client.get("/system/backup/backups/backup-2020-01-01T00-00-00-000Z").status_code == 404


def test_a_deleted_backups_panels_reload_and_its_detail_closes(app, htmx, run_worker):
    htmx.create()
    run_worker()
    [backup_id] = ROW.findall(htmx.request("GET", LIST).get_data(as_text=True))
    detail_url = f"/system/backup/backups/{backup_id}"
    refresh = re.search(r'hx-get="([^"]+refresh=1[^"]*)"',
                        htmx.request("GET", detail_url).get_data(as_text=True)).group(1)

    deleted = htmx.request("DELETE", f"/system/backup/{backup_id}")
    assert deleted.status_code == 200 and deleted.headers["HX-Trigger"] == "backups-changed"
    assert "No backups yet" in htmx.request("GET", LIST).get_data(as_text=True)
    gone = htmx.request("GET", refresh.replace("&amp;", "&"))
    assert gone.status_code == 200 and gone.get_data(as_text=True) == ""
    assert htmx.request("GET", detail_url).status_code == 404  # opened by hand: says so


def test_a_row_verifies_in_its_own_cell(app, htmx, run_worker):
    htmx.create()
    run_worker()
    [backup_id] = ROW.findall(htmx.request("GET", LIST).get_data(as_text=True))
    cell = htmx.request("POST", f"/system/backup/{backup_id}/verify",
                        data={"level": "integrity", "view": "row"})
    html = cell.get_data(as_text=True)
    assert html.lstrip().startswith(f'<div class="vcell" id="vcell-{backup_id}"')
    assert 'hx-trigger="every 1s"' in html and "Integrity check: queued…" in html
    poll = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "view=row" in poll
    assert poll.split("?")[0] in htmx.request("GET", LIST).get_data(as_text=True)

    run_worker()
    done = htmx.request("GET", poll)
    assert 'hx-trigger="every 1s"' not in done.get_data(as_text=True)
    assert 'class="vbadge vbadge-valid">Valid<' in done.get_data(as_text=True)
    assert done.headers["HX-Trigger"] == "backups-changed"  # the detail and table reload
    bad = htmx.request("POST", f"/system/backup/{backup_id}/verify", data={"view": "card"})
    assert bad.status_code == 400
    assert "view: 'card' is not one of row, detail" in html_text.unescape(bad.get_data(
        as_text=True))


@pytest.mark.parametrize(("status", "fields", "shown"), [
    ("completed", {"result": {"matchesManifest": True, "itemsRestored": 213}},
     "Matches the backup's manifest · 213 items"),
    ("failed", {"error": "pg_restore: could not create database: disk full"},
     "pg_restore: could not create database: disk full"),
])
def test_the_restore_panel_ends_in_the_final_state(app, htmx, status, fields, shown):
    from services.extensions import db
    from services.models import Restore

    restore_id = "restore-2030-01-02T00-00-00-000Z"
    with app.app_context():
        db.session.add(Restore(id=restore_id, backup_id=backup_id_at(START), mode="new-database",
                               target_database="shop_copy", status=status, **fields))
        db.session.commit()
    response = htmx.request("GET", f"/system/backup/restores/{restore_id}/state")
    html = html_text.unescape(response.get_data(as_text=True))
    assert f"<h2>Restore {status}</h2>" in html and shown in html
    assert "hx-trigger" not in html and "<progress" not in html  # polling stops
    assert response.headers["HX-Trigger"] == "restores-changed, backups-changed"


# Must show: a catalog of 10,000 backups costs the section's first page what 50 do.


def first_page(app, htmx) -> tuple[str, int]:
    """The Backups section as the navigation loads it, and the SQL statements it took."""
    from services.extensions import db

    statements = []

    def count(*_args) -> None:
        statements.append(1)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = htmx.request("GET", "/system/backup")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    return response.get_data(as_text=True), len(statements)


def test_ten_thousand_backups_render_the_same_first_page_as_fifty(app, htmx):
    add_backups(app, 50)
    fifty, fifty_statements = first_page(app, htmx)
    add_backups(app, 9_950, first=50)
    ten_thousand, statements = first_page(app, htmx)

    assert len(ROW.findall(fifty)) == len(ROW.findall(ten_thousand)) == 50
    assert ten_thousand.count("<tr") == fifty.count("<tr")
    assert "1\N{EN DASH}50 of 10,000 · page 1 of 200" in ten_thousand
    assert re.search(r'figure-value">10,000<', ten_thousand)
    # The numbers differ (10,000 against 50; the size; two pager links live, not inert):
    # a few hundred bytes of a page of about 110 kB.
    assert abs(len(ten_thousand) - len(fifty)) < 0.01 * len(fifty), (len(fifty),
                                                                     len(ten_thousand))
    assert statements == fifty_statements  # no statement per row, however many rows
