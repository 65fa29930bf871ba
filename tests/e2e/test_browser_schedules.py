"""The schedules panel in Debian's headless Chromium, as a viewer in New York sees it.

Uses the fixtures of conftest.py and the helpers of browser.py; only the browser context
differs: its time zone is America/New_York, so the viewer's times can be checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import (
    LAPTOP,
    PHONE,
    WAIT_MS,
    assert_no_horizontal_overflow,
    assert_not_reloaded,
    log_in,
    mark_document,
    open_section,
    screenshot,
    screenshot_element,
    watch_console,
)

pytestmark = pytest.mark.browser

VIEWER_ZONE = "America/New_York"


@pytest.fixture
def page(browser: Browser, base_url: str, console_errors: list[str],
         refused: list[int]) -> Iterator[Page]:
    """Like conftest's page, in New York: the viewer's zone is only known there."""
    context = browser.new_context(base_url=base_url, viewport=LAPTOP, locale="en-US",
                                  timezone_id=VIEWER_ZONE)
    page = context.new_page()
    watch_console(page, console_errors, refused)
    yield page
    context.close()


def viewer_text(app, name: str) -> str:
    """The schedule's next run as a browser in New York should show it."""
    from services.extensions import db
    from services.models import Schedule

    with app.app_context():
        schedule = db.session.query(Schedule).filter_by(name=name).one()
        local = schedule.next_run_at.replace(tzinfo=UTC).astimezone(ZoneInfo(VIEWER_ZONE))
    return f"{local:%a %Y-%m-%d %H:%M %Z}"


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["1280", "390"])
def test_schedule_story(app, page: Page, console_errors: list[str], refused: list[int],
                        run_worker, viewport) -> None:
    page.set_viewport_size(viewport)
    log_in(page)
    mark_document(page)
    open_section(page, "Schedules")
    expect(page.locator("#schedule-list .empty")).to_contain_text("No schedules yet")
    expect(page.locator("#retention")).to_contain_text("No backups yet")
    form = page.locator("#schedule-form-new")
    expect(form).to_be_visible()  # no schedule yet: the form is open

    # Only the fields of the chosen frequency show (CSS, no script).
    frequency = form.get_by_label("Frequency")
    expect(form.get_by_label("Day of week")).to_be_hidden()
    frequency.select_option("weekly")
    expect(form.get_by_label("Day of week")).to_be_visible()
    expect(form.get_by_label("Day of month")).to_be_hidden()
    frequency.select_option("cron")
    expect(form.get_by_label("Cron expression")).to_be_visible()
    expect(form.get_by_label("Time", exact=True)).to_be_hidden()
    frequency.select_option("daily")
    expect(form.get_by_label("Time", exact=True)).to_be_visible()
    expect(form.get_by_label("Cron expression")).to_be_hidden()

    # Create "nightly": daily 02:00 in Berlin.
    form.get_by_label("Name", exact=True).fill("nightly")
    form.get_by_label("Time", exact=True).fill("02:00")
    form.get_by_label("Time zone").fill("Europe/Berlin")
    form.get_by_label("Retention (days)").fill("14")
    form.get_by_label("Keep at least").fill("3")
    form.get_by_role("button", name="Create schedule").click()

    card = page.locator("#schedule-list .schedule").filter(has_text="nightly")
    expect(card).to_have_count(1)
    expect(card.locator(".schedule-desc")).to_have_text("daily at 02:00 Europe/Berlin")
    expect(card.locator(".next-local")).to_have_text(
        re.compile(r"^\w{3} \d{4}-\d\d-\d\d 02:00 CES?T$"))
    expected = viewer_text(app, "nightly")
    assert expected[15:20] in ("20:00", "21:00") and expected.endswith((" EST", " EDT"))
    viewer = card.locator(".next-viewer time")
    expect(viewer).to_have_text(expected)
    expect(viewer).to_have_attribute("title", f"Your time ({VIEWER_ZONE})")
    expect(card.locator(".last-run")).to_contain_text("never")
    expect(form.get_by_label("Name", exact=True)).to_have_value("")  # a fresh form

    # An impossible time: the message next to the form, the input kept.
    form.get_by_label("Name", exact=True).fill("broken")
    form.get_by_label("Time", exact=True).fill("25:00")
    form.get_by_role("button", name="Create schedule").click()
    expect(form.locator(".sf-error")).to_have_text(
        'time: "25:00" is not a time of day (use HH:MM, 00:00-23:59)')
    expect(form.get_by_label("Name", exact=True)).to_have_value("broken")
    expect(form.get_by_label("Time", exact=True)).to_have_value("25:00")
    expect(form.get_by_label("Time", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#schedule-list .schedule")).to_have_count(1)
    screenshot_element(page, "#schedules", "schedules-error-phone", PHONE)
    assert_no_horizontal_overflow(page)
    page.set_viewport_size(viewport)
    form.get_by_label("Name", exact=True).fill("")
    form.get_by_label("Time", exact=True).fill("02:00")

    # Disable, then enable again.
    switch = card.get_by_role("switch", name="Enabled")
    expect(switch).to_be_checked()
    switch.click()
    expect(card.locator(".tag-off")).to_have_text("disabled")
    expect(switch).not_to_be_checked()
    expect(card.locator(".next-local")).to_have_text("none while disabled")
    switch.click()
    expect(card.locator(".tag-off")).to_have_count(0)
    expect(switch).to_be_checked()
    expect(card.locator(".next-viewer time")).to_have_text(expected)

    # Run now: a backup starts; a second click while it is queued is skipped.
    card.get_by_role("button", name="Run now").click()
    outcome = card.locator(".last-run-outcome")
    expect(outcome).to_contain_text(re.compile(r"started backup-\S+"))
    expect(card.locator(".last-run .badge")).to_have_text("queued")
    backup_id = re.search(r"backup-\S+", outcome.inner_text()).group(0)
    card.get_by_role("button", name="Run now").click()
    expect(outcome).to_contain_text(
        re.compile(r"skipped: the previous run \(backup-\S+\) is still queued"))
    expect(card.locator(".last-run .badge")).to_have_text("skipped")

    run_worker()  # the backup and its integrity check

    expect(card.locator(".last-run .badge")).to_have_text("completed", timeout=WAIT_MS)
    expect(outcome).to_contain_text(re.compile(r"^started backup-\S+$"))
    retention = page.locator("#retention")
    expect(retention.locator(".retention-verdict")).to_contain_text(
        "would delete nothing: the 1 backup stays", timeout=WAIT_MS)
    retention.locator(".retention-kept summary").click()
    expect(retention.locator(".retained-reason")).to_contain_text("kept: within retention")
    expect(card.locator(".last-run time")).to_have_attribute("title", f"Your time ({VIEWER_ZONE})")
    screenshot(page, "schedules-laptop", LAPTOP)
    screenshot(page, "schedules-phone", PHONE)
    screenshot_element(page, "#schedules", "schedules-panel-phone", PHONE)
    assert_no_horizontal_overflow(page)
    page.set_viewport_size(viewport)

    # Edit in place: weekly on Sunday at 03:30.
    card.get_by_role("button", name="Edit").click()
    edit = page.locator("#schedule-list .schedule-editing")
    expect(edit.get_by_label("Time", exact=True)).to_have_value("02:00")
    expect(edit.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    edit.get_by_label("Frequency").select_option("weekly")
    edit.get_by_label("Day of week").select_option("Sunday")
    edit.get_by_label("Time", exact=True).fill("03:30")
    screenshot_element(page, "#schedules", "schedules-edit-phone", PHONE)
    assert_no_horizontal_overflow(page)
    page.set_viewport_size(viewport)
    edit.get_by_role("button", name="Save").click()
    expect(card.locator(".schedule-desc")).to_have_text("weekly on Sunday at 03:30 Europe/Berlin")
    expect(card.locator(".next-viewer time")).to_have_text(viewer_text(app, "nightly"))

    # Delete: the schedule goes, its backup stays (kept until deleted by hand).
    messages: list[str] = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    card.get_by_role("button", name="Delete").click()
    expect(page.locator("#schedule-list .empty")).to_contain_text("No schedules yet")
    assert messages == ["Delete the schedule nightly? Its backups stay until you delete them."]
    expect(retention.locator(".retention-verdict")).to_contain_text("would delete nothing")
    retention.locator(".retention-kept summary").click()
    expect(retention.locator(".retained-reason")).to_contain_text("its schedule")

    # The backup stays in the Backups section; Back returns to the schedules.
    open_section(page, "Backups")
    expect(page.locator("#backups")).to_contain_text(backup_id)
    page.go_back()
    expect(page.locator("#schedule-list .empty")).to_contain_text("No schedules yet")
    assert_not_reloaded(page)

    # No console error; the one refused answer is the form's 400 (Chromium's network log).
    assert console_errors == []
    assert refused == [400]
