"""A new install in Debian's headless Chromium, with a real worker and scheduler: the
dashboard opens calm (no red), the Health section shows the two first steps, and they lead
to the new-backup form and the Schedules section; after the first backup, all is OK. At
1280 px and 390 px, with no console error and no CSP violation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import url_for
from playwright.sync_api import Page, expect

from services.extensions import db
from services.models import Backup
from tests.e2e.browser import (
    CSP_LISTENER,
    LAPTOP,
    PHONE,
    WAIT_MS,
    assert_no_horizontal_overflow,
    log_in,
)
from tests.support.workers import wait_for

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots")
RED = ".health-critical, .status-critical, .issue-error, .mbadge-critical"


def shot(page: Page, name: str, width: int) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"firstrun-{name}-{width}.png"), full_page=True)


def section_url(app, endpoint: str) -> str:
    with app.test_request_context():
        return url_for(endpoint)


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["1280", "390"])
def test_a_fresh_install_opens_on_first_steps_not_red(
        app, page: Page, console_errors: list[str], worker, scheduler, viewport) -> None:
    app.config.update(DISK_WARNING_PERCENT=100, DISK_CRITICAL_PERCENT=100)  # not under test
    width = viewport["width"]
    health_url = section_url(app, "dashboard.section.health")
    page.set_viewport_size(viewport)
    page.add_init_script(CSP_LISTENER)
    log_in(page)

    # The page a newcomer lands on is calm: the strip says "Getting started", nothing is red.
    expect(page.locator(".status-health")).to_have_text("Getting started", timeout=WAIT_MS)
    landing_steps = page.locator("#backups .first-steps")
    expect(landing_steps).to_contain_text("No backups yet: nothing is wrong.")
    expect(landing_steps.get_by_role("link", name="Set up a nightly schedule")).to_be_visible()
    assert page.locator(RED).count() == 0
    assert_no_horizontal_overflow(page)
    shot(page, "backups", width)

    page.goto(health_url)
    panel = page.locator("#health")
    expect(panel.locator(".health-body")).to_have_class(re.compile("health-setup"),
                                                        timeout=WAIT_MS)
    expect(panel.locator(".health-status")).to_have_text("Getting started")
    expect(panel.locator(".health-problems")).to_have_count(0)
    steps = panel.locator(".first-steps")
    expect(steps).to_contain_text("Nothing is wrong: there is no backup yet.")
    create = steps.get_by_role("link", name="Create your first backup")
    schedule = steps.get_by_role("link", name="Set up a nightly schedule")
    expect(create).to_be_visible()
    expect(schedule).to_be_visible()
    assert page.locator(RED).count() == 0
    panel.locator(".health-all summary").click()
    expect(panel.locator("#health-checks .check-setup")).to_contain_text("no full backup yet")
    expect(panel.locator("#health-checks .check-ok")).to_have_count(9)
    assert_no_horizontal_overflow(page)
    shot(page, "health", width)

    # The second step leads to the Schedules section ...
    schedule.click()
    expect(page.locator("#schedules")).to_be_visible()
    page.go_back()
    # ... and the first to the new-backup form, which takes the first backup.
    page.locator("#health .first-steps").get_by_role(
        "link", name="Create your first backup").click()
    expect(page).to_have_url(re.compile(r"/system/backup#new-backup$"))
    # A new page: its deferred scripts must have run, or the form submits without htmx.
    page.wait_for_load_state("load")
    page.get_by_role("button", name="Create backup").click()

    def verified() -> bool:
        with app.app_context():
            db.session.expire_all()
            backup = db.session.scalars(db.select(Backup)).first()
            return backup is not None and backup.verification == "valid"

    wait_for(verified)
    page.goto(health_url)
    expect(page.locator("#health .health-status")).to_have_text("All systems OK",
                                                                timeout=WAIT_MS)
    expect(page.locator("#health .first-steps")).to_have_count(0)
    expect(page.locator(".status-health")).to_have_text("All systems OK")
    shot(page, "after-first-backup", width)

    assert page.evaluate("window.cspViolations") == []
    assert console_errors == []
