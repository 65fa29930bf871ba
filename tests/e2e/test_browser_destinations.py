"""Destinations in Debian's headless Chromium: a backup sent to two places from the form,
its copies on its card, the probe, and a rescan whose report appears when its job ends,
without a reload or a console error, at laptop and phone width."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    PHONE,
    WAIT_MS,
    assert_no_horizontal_overflow,
    assert_not_reloaded,
    log_in,
    mark_document,
    open_section,
    screenshot_element,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def nas(app, tmp_path: Path) -> Path:
    """A second local destination, as an admin adds it through the API."""
    from services import destinations
    from services.models import Destination

    path = tmp_path / "nas"
    path.mkdir()
    with app.app_context():
        destinations.save(Destination(), {
            "name": "nas", "type": "local", "settings": {"path": str(path)}, "encryptTo": [],
            "required": False, "retentionDays": 90, "keepAtLeast": None, "lockMode": None,
            "lockDays": None})
    return path


def test_destinations_story(app, page: Page, console_errors: list[str], run_worker,
                            nas: Path) -> None:
    log_in(page)
    mark_document(page)
    open_section(page, "Settings")
    panel = page.locator("#destinations")
    expect(panel.locator("#destination-nas")).to_contain_text("keeps 90 days")
    expect(panel.locator("#destination-nas")).to_contain_text("none yet")

    # Probe: one sentence next to the button.
    panel.locator("#destination-nas").get_by_role("button", name="Test").click()
    expect(panel.locator("#probe-nas")).to_have_text(
        "✓ wrote, read back and deleted 4096 bytes")

    # A backup to both destinations, ticked in the form.
    open_section(page, "Backups")
    form = page.locator(".create-form")
    expect(form.get_by_label("local")).to_be_checked()  # DEFAULT_DESTINATIONS
    form.get_by_label("nas").check()
    form.get_by_role("button", name="Create backup").click()
    expect(page.locator("#backups .backup-row")).to_have_count(1)
    run_worker()
    page.locator("#backups .backup-row a.filename").click()  # its detail lists the copies
    copies = page.locator("#backup-detail-panel .copy")
    expect(copies).to_have_count(2, timeout=WAIT_MS)
    expect(copies.nth(0)).to_contain_text("local")
    expect(copies.nth(1)).to_contain_text(f"nas stored {nas}")
    open_section(page, "Settings")
    expect(panel.locator("#destination-nas")).not_to_contain_text("none yet", timeout=WAIT_MS)

    # Rescan: the catalog already knows the backup; the report says so when the job ends.
    panel.get_by_label("Rebuild the catalog from the manifests on").select_option("nas")
    panel.get_by_role("button", name="Rescan").click()
    report = page.locator("#rescan-result .rescan-status")
    expect(report).to_contain_text("Rescan queued")
    run_worker()
    expect(report).to_contain_text(
        "1 manifests found on nas; 0 backups imported, 0 copies added, 1 already known",
        timeout=WAIT_MS)
    with page.expect_response("**/system/backup/destinations"):  # the panel reloads...
        page.evaluate("htmx.trigger(document.body, 'backups-changed')")
    expect(report).to_contain_text("1 already known")  # ...and the report stays

    screenshot_element(page, "#destinations", "destinations-phone", PHONE)
    assert_no_horizontal_overflow(page)
    assert_not_reloaded(page)
    assert console_errors == []
