"""The dashboard in Debian's headless Chromium: log in, create, watch a real worker finish.

Fixtures and helpers shared by every browser test: conftest.py and browser.py here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    LAPTOP,
    PHONE,
    SCREENSHOTS,
    WAIT_MS,
    assert_no_horizontal_overflow,
    assert_not_reloaded,
    log_in,
    mark_document,
    restore_into_new_database,
    screenshot,
    screenshot_element,
)

pytestmark = pytest.mark.browser


def figure(page: Page, label: str):
    return page.locator(".figure").filter(has_text=label)


def test_create_a_backup_and_watch_it_complete(page: Page, console_errors: list[str],
                                               run_worker) -> None:
    log_in(page)
    expect(figure(page, "Newest completed")).to_contain_text("create your first backup above")
    expect(figure(page, "Newest completed")).not_to_have_class(re.compile("figure-warn"))
    mark_document(page)

    page.get_by_label("Full (schema + data)").check()
    page.get_by_role("button", name="Create backup").click()
    card = page.locator("#backups .backup-row")
    expect(card).to_have_count(1)
    expect(card.locator(".badge")).to_have_text("queued")
    expect(card.locator(".progress progress")).to_be_visible()
    expect(card.locator(".progress-text")).to_contain_text("Waiting for a worker")
    expect(figure(page, "Backups")).to_contain_text("1")
    screenshot(page, "queued", LAPTOP)

    run_worker()

    expect(card.locator(".badge")).to_have_text("completed", timeout=WAIT_MS)
    expect(card.locator(".filename")).to_have_attribute("title", re.compile(r"\.dump\.zst$"))
    expect(card.locator(".backup-size")).to_have_text(re.compile(r"\d+\.\d (KiB|MiB)"))
    expect(card.locator(".progress")).to_have_count(0, timeout=WAIT_MS)
    expect(figure(page, "Newest completed")).to_contain_text("just now")
    expect(figure(page, "Newest completed")).not_to_have_class(re.compile("figure-warn"))
    expect(figure(page, "Total size")).to_contain_text(re.compile(r"\d+\.\d (KiB|MiB)"))
    assert_not_reloaded(page)

    screenshot(page, "laptop", LAPTOP)
    screenshot(page, "phone", PHONE)
    assert_no_horizontal_overflow(page)

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete").click()
    expect(page.locator("#backups .empty")).to_contain_text("No backups yet")
    expect(figure(page, "Newest completed")).to_contain_text("create your first backup above")
    assert_not_reloaded(page)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    assert console_errors == []


def test_queue_outage_shows_an_inline_error(app, page: Page, console_errors: list[str]) -> None:
    log_in(page)
    mark_document(page)
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("redis", None)

    page.get_by_role("button", name="Create backup").click()

    expect(page.locator("#alerts .alert-error")).to_contain_text("Redis")
    expect(page.locator("#backups .empty")).to_contain_text("No backups yet")
    assert_not_reloaded(page)
    page.set_viewport_size(PHONE)
    assert_no_horizontal_overflow(page)
    assert all("503" in error for error in console_errors), console_errors


def test_login_page_fits_a_phone(page: Page, console_errors: list[str]) -> None:
    page.set_viewport_size(PHONE)
    page.goto("/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".alert-error")).to_have_text("Wrong username or password.")
    assert_no_horizontal_overflow(page)
    page.screenshot(path=str(SCREENSHOTS / "pgbackup-login-phone.png"))
    assert all("401" in error for error in console_errors), console_errors


RESTORED = "restored_copy"


@pytest.fixture
def restored_copy(pg_server) -> Iterator[str]:
    pg_server.drop_database(RESTORED)
    yield RESTORED
    pg_server.drop_database(RESTORED)


def test_verify_then_restore_into_a_new_database(
    page: Page, console_errors: list[str], run_worker, pagila: str, pg_server, restored_copy: str
) -> None:
    from tests.support.dbcompare import table_fingerprints

    log_in(page)
    mark_document(page)
    page.get_by_role("button", name="Create backup").click()
    row = page.locator("#backups .backup-row")
    expect(row.locator(".badge")).to_have_text("queued")

    run_worker()  # the backup, then its automatic integrity check

    expect(row.locator(".badge")).to_have_text("completed", timeout=WAIT_MS)
    expect(row.locator(".vbadge")).to_have_text("Valid", timeout=WAIT_MS)
    row.locator("a.filename").click()
    card = page.locator("#backup-detail-panel")  # the backup's detail
    expect(card.locator(".check-name").filter(has_text="sha256")).to_be_visible()

    # A test restore, watched in the detail.
    card.get_by_label(re.compile("Verification level")).select_option("restore")
    card.get_by_role("button", name="Verify").click()
    expect(card.locator(".verification .progress-text")).to_contain_text(
        "Test restore: waiting for a worker")
    run_worker()
    expect(card.locator(".verification .progress")).to_have_count(0, timeout=WAIT_MS)
    expect(card.locator(".verification-head")).to_contain_text("Test restore ·")
    expect(card.locator(".vbadge")).to_have_text("Valid")

    # Restore: the dry run comes first.
    card.get_by_role("button", name="Restore…").click()
    dialog = page.locator("#restore-panel .restore-dialog")
    expect(dialog.locator(".dry-run-note")).to_contain_text("Dry run of a restore over")
    expect(dialog.locator(".issue-ok")).to_contain_text("The restore can go ahead")
    expect(dialog.get_by_role("heading", name="Changes")).to_be_visible()
    expect(dialog.get_by_text("Estimated time")).to_be_visible()
    screenshot_element(page, "#restore-panel", "dry-run-laptop", LAPTOP)
    screenshot_element(page, "#restore-panel", "dry-run-phone", PHONE)
    assert_no_horizontal_overflow(page)
    page.set_viewport_size(LAPTOP)

    # Overwriting needs the database's name typed exactly.
    overwrite = dialog.locator(".choice-danger")
    overwrite.get_by_label(re.compile("to confirm")).fill("not-the-name")
    overwrite.get_by_role("button", name=re.compile("^Restore over")).click()
    expect(overwrite.locator(".alert-error")).to_contain_text("type its name exactly")

    restore = restore_into_new_database(page, restored_copy, run_worker)
    expect(restore).to_contain_text(restored_copy)
    expect(restore.locator(".restore-outcome")).to_contain_text("Matches the backup's manifest")
    expect(restore.locator(".progress")).to_have_count(0)
    assert_not_reloaded(page)
    screenshot(page, "restored-laptop", LAPTOP)
    screenshot(page, "restored-phone", PHONE)
    assert_no_horizontal_overflow(page)

    assert table_fingerprints(pg_server.url(restored_copy)) == table_fingerprints(pagila)
    assert all("400" in error for error in console_errors), console_errors
