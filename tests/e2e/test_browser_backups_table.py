"""The Backups section in Debian's headless Chromium, at 1280 px and at 390 px: a backup
made and watched to the end in the table, a filter that is a link, one backup's detail
with a test restore's checks as a table of sane height, and a restore into a new database
that ends, in its panel, as completed; without a reload or a console error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    LAPTOP,
    PHONE,
    WAIT_MS,
    assert_no_horizontal_overflow,
    assert_not_reloaded,
    backup_rows,
    create_backup,
    element_screenshot,
    log_in,
    mark_document,
    restore_into_new_database,
)

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
RESTORED = "restored_from_table"


@pytest.fixture
def restored_copy(pg_server) -> Iterator[str]:
    pg_server.drop_database(RESTORED)
    yield RESTORED
    pg_server.drop_database(RESTORED)


def shot(page: Page, name: str, viewport: dict[str, int], selector: str | None = None) -> None:
    SHOTS.mkdir(exist_ok=True)
    path = str(SHOTS / f"backups-{name}-{viewport['width']}.png")
    if selector:
        element_screenshot(page, selector, path)
    else:
        page.screenshot(path=path, full_page=True)


def filters(page: Page):
    return page.locator("#backup-filters")


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["1280", "390"])
def test_the_table_filters_opens_a_detail_verifies_and_restores(
    page: Page, console_errors: list[str], run_worker, pagila: str, pg_server,
    restored_copy: str, viewport: dict[str, int],
) -> None:
    from tests.support.dbcompare import table_fingerprints

    page.set_viewport_size(viewport)
    log_in(page)
    mark_document(page)
    create_backup(page, "Full (schema + data)", run_worker)
    create_backup(page, "Schema only", run_worker)
    expect(backup_rows(page)).to_have_count(2)
    full = backup_rows(page).filter(has_text="full")
    full_id = full.get_attribute("id").removeprefix("backup-")
    assert_not_reloaded(page)
    shot(page, "table", viewport)

    # A filter swaps the table and pushes its URL, which then loads the same view.
    filters(page).get_by_label("Type").select_option("schema-only")
    expect(backup_rows(page)).to_have_count(1)
    expect(backup_rows(page).first).to_contain_text("schema-only")
    expect(page).to_have_url(re.compile(r"/system/backup/list\?type=schema-only"))
    expect(page.locator("#backups .pager-where")).to_contain_text("1\N{EN DASH}1 of 1")
    page.reload()
    expect(backup_rows(page)).to_have_count(1)
    expect(filters(page).get_by_label("Type")).to_have_value("schema-only")
    mark_document(page)
    # Two choices at once: the second waits for the first answer (the filters are disabled
    # until it comes) instead of being lost to it.
    filters(page).get_by_label("Type").select_option("")
    filters(page).get_by_label("Sort by").select_option("size")
    expect(backup_rows(page)).to_have_count(2)
    expect(filters(page).get_by_label("Sort by")).to_have_value("size")
    expect(backup_rows(page).first).to_have_id(f"backup-{full_id}")  # the full one is the largest

    # Verify from a row: its cell follows the job, then the table shows the result.
    schema_only = backup_rows(page).filter(has_text="schema-only")
    schema_only.get_by_role("button", name="Verify").click()
    expect(schema_only.locator(".vcell-progress")).to_contain_text("Integrity check: queued")
    run_worker()
    expect(schema_only.locator(".vcell-progress")).to_have_count(0, timeout=WAIT_MS)
    expect(schema_only.locator(".vbadge")).to_have_text("Valid")

    # The detail: its own URL, the checks of a test restore as a table.
    full.locator("a.filename").click()
    detail = page.locator("#backup-detail-panel")
    expect(detail).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/system/backup/backups/{full_id}"))
    expect(detail.locator(".checks-table .check-name").filter(has_text="sha256")).to_be_visible()
    detail.get_by_label(re.compile("Verification level")).select_option("restore")
    detail.get_by_role("button", name="Verify").click()
    expect(detail.locator(".verification .progress-text")).to_contain_text(
        "Test restore: waiting for a worker")
    # Its end reloads what shows backups: this panel too, once more.
    with page.expect_response(lambda response: "refresh=1" in response.url, timeout=WAIT_MS):
        run_worker()
    expect(detail.locator(".verification-head")).to_contain_text("Test restore ·")
    checks = detail.locator(".checks-table")
    expect(checks.locator("tbody tr").nth(20)).to_be_visible()  # one per table, and more
    shot(page, "detail", viewport, "#backup-detail-panel")
    # At 1280 px a check is a line; at 390 px, two (name and result, then the detail).
    screens = 2 if viewport == LAPTOP else 5
    assert checks.bounding_box()["height"] < screens * viewport["height"]
    assert_no_horizontal_overflow(page)

    # Restore into a new database from the detail: the panel ends as completed.
    detail.get_by_role("button", name="Restore…").click()
    dialog = page.locator("#restore-panel .restore-dialog")
    expect(dialog.locator(".issue-ok")).to_contain_text("The restore can go ahead")
    state = restore_into_new_database(page, restored_copy, run_worker)
    expect(state.locator(".restore-outcome")).to_contain_text("Matches the backup's manifest")
    expect(state.locator("progress")).to_have_count(0)
    expect(detail.locator(".restores-of")).to_contain_text(restored_copy, timeout=WAIT_MS)
    shot(page, "restored", viewport, "#restore-panel")
    shot(page, "section", viewport)
    assert_not_reloaded(page)
    assert_no_horizontal_overflow(page)
    assert table_fingerprints(pg_server.url(restored_copy)) == table_fingerprints(pagila)
    assert console_errors == []
