"""The chains panel in Debian's headless Chromium: a chain (a full and an incremental) with
its reachable window, a dry run to a moment typed in the form opening the restore panel
with the chain, without a reload or a console error, and no horizontal overflow at phone
width."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    PHONE,
    assert_no_horizontal_overflow,
    assert_not_reloaded,
    log_in,
    mark_document,
    screenshot_element,
)
from tests.support.backups import backed_up
from tests.support.capture import write

pytestmark = pytest.mark.browser


def typed(iso: str) -> str:
    """The datetime-local value of an API moment (``...T04:24:01.618Z``), one millisecond
    earlier so that it is never a whole second (the browser would shorten it)."""
    moment = datetime.fromisoformat(iso) - timedelta(milliseconds=1)
    if moment.microsecond == 0:
        moment -= timedelta(milliseconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def test_chains_story(page: Page, console_errors: list[str], api, run_worker, pagila: str,
                      capture: str) -> None:
    full = backed_up(api, run_worker)
    write(pagila, "UPDATE rental SET return_date = now() WHERE rental_id <= 10",
          "INSERT INTO actor (first_name, last_name) VALUES ('POINT', 'INTIME')")
    incremental = backed_up(api, run_worker, type="incremental")
    latest = incremental["capture"]["coversUntil"]

    log_in(page)
    mark_document(page)
    chain = page.locator(f"#chain-{full['id']}")
    expect(chain).to_contain_text(incremental["id"])
    expect(chain.locator(".chain-window")).to_contain_text(latest[:23].replace("T", " "))
    expect(page.locator("#chains .slot-live")).to_contain_text(incremental["capture"]["slot"])

    # A dry run to a moment inside the incremental opens the restore panel with the chain.
    field = page.get_by_label("Restore to the moment (UTC)")
    expect(field).to_have_attribute("max", latest[:23])
    field.fill(typed(incremental["capture"]["lastCommitAt"]))
    page.locator("#chains").get_by_role("button", name="Dry run").click()
    dialog = page.locator("#restore-panel .restore-dialog")
    expect(dialog.locator("h2")).to_contain_text("Restore to")
    expect(dialog.locator(".issue-ok")).to_contain_text("The restore can go ahead")
    analysis = dialog.locator(".chain-analysis")
    expect(analysis).to_contain_text(f"{full['id']} restored first")
    expect(analysis).to_contain_text(f"{incremental['id']} replayed up to the moment")
    expect(analysis.locator(".chain-window")).to_contain_text(full["capture"]["consistentAt"][:16]
                                                              .replace("T", " "))

    # "Dry-run this name" keeps the moment: the dry run of the same chain, into that name.
    dialog.get_by_label("New database name").fill("pit_copy")
    dialog.get_by_role("button", name="Dry-run this name").click()
    expect(dialog.locator(".dry-run-note")).to_contain_text("into the new database pit_copy")
    expect(dialog.locator("h2")).to_contain_text("Restore to")
    expect(dialog.locator(".chain-analysis")).to_contain_text("replayed up to the moment")

    screenshot_element(page, "#restore-panel", "chains-dry-run-phone", PHONE)
    assert_no_horizontal_overflow(page)
    screenshot_element(page, "#chains", "chains-phone", PHONE)
    assert_no_horizontal_overflow(page)
    assert_not_reloaded(page)
    assert console_errors == []
