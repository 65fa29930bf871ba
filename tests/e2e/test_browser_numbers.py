"""Numbers a person reads, in Debian's headless Chromium at 1280 px and at 390 px: one
backup's size is the same text in the table and in the activity log, its creation time
the same in the table and in the dry run, and the dry run counts Pagila's partitions under
their table; without a console error (the page fixture checks)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    LAPTOP,
    PHONE,
    backup_rows,
    create_backup,
    log_in,
    open_section,
)

pytestmark = pytest.mark.browser
SIZE = re.compile(r"^\d+(\.\d)? (B|KiB|MiB|GiB)$")


def dry_run_field(page: Page, label: str):
    dialog = page.locator("#restore-panel .restore-dialog")
    return dialog.locator("dt", has_text=re.compile(f"^{re.escape(label)}$")).locator(
        "xpath=following-sibling::dd")


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["1280", "390"])
def test_one_backup_reads_the_same_everywhere(page: Page, run_worker, viewport) -> None:
    page.set_viewport_size(viewport)
    log_in(page)
    create_backup(page, "Full (schema + data)", run_worker)
    row = backup_rows(page).first
    size = row.locator(".backup-size").inner_text().strip()
    created = row.locator(".backup-created").inner_text().strip()
    assert SIZE.match(size), size

    # The dry run: the same creation time; Pagila's 7 payment partitions under payment.
    row.get_by_role("button", name="Restore…").click()
    expect(dry_run_field(page, "Taken (UTC)")).to_have_text(created)
    expect(dry_run_field(page, "Tables")).to_have_text("15 tables (7 partitions)")

    # The activity log: the backup's size in the same words as the table, no byte count.
    open_section(page, "Activity")
    taken = page.locator("#activity .activity-row").filter(has_text="Backup taken")
    expect(taken.locator(".activity-detail")).to_have_text(size)
    expect(page.locator("#activity")).not_to_contain_text(re.compile(r"\d bytes"))
