"""The dashboard's sections in Debian's headless Chromium, at 1280 px and at 390 px: the
navigation swaps the section and pushes its URL without a reload, Back and Forward bring
the sections back, each URL loads its section directly (and without JavaScript), the
header fits a phone and no section is longer than a few screens with ten backups."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ADMIN_PASSWORD
from tests.e2e.browser import (
    LAPTOP,
    PHONE,
    WAIT_MS,
    assert_no_horizontal_overflow,
    assert_not_reloaded,
    log_in,
    mark_document,
    open_section,
)

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
# Section: its URL and what shows once it has loaded.
SECTIONS = {
    "Backups": ("/system/backup", "#backups"),
    "Schedules": ("/system/backup/section/schedules", "#schedule-list"),
    "Restores": ("/system/backup/section/restores", "section#restores"),
    "Health": ("/system/backup/section/health", "#health .health-status"),
    "Activity": ("/system/backup/section/activity", "#activity .activity-row"),
    "Settings": ("/system/backup/section/settings", "#destinations"),
}
SCREENS = 4  # the longest a section may be, in viewport heights
BACKUPS = 10


@pytest.fixture
def ten_backups(api, run_worker) -> None:
    """Ten backups, each with its automatic integrity check, and a schedule."""
    for index in range(BACKUPS):
        kind = "schema-only" if index % 3 else "full"
        assert api.post("/api/system/backup", json={"type": kind}).status_code == 202
    run_worker()
    listed = api.get("/api/system/backup").get_json()
    assert [row["status"] for row in listed["backups"]] == ["completed"] * BACKUPS
    created = api.post("/api/system/backup/schedule", json={
        "name": "nightly", "type": "full", "frequency": "daily", "time": "02:00",
        "timezone": "UTC", "retention": 30})
    assert created.status_code == 201, created.get_json()


def nav(page: Page):
    return page.locator("#section-nav")


def go_to(page: Page, name: str) -> None:
    """Click ``name`` in the navigation and wait for its section's content."""
    open_section(page, name)
    assert_shows(page, name)


def assert_shows(page: Page, name: str) -> None:
    path, ready = SECTIONS[name]
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    expect(page.locator(ready).first).to_be_visible(timeout=WAIT_MS)
    expect(nav(page).locator("[aria-current=page]")).to_have_text(name)
    expect(page).to_have_title(f"{name} · PG Backup Manager")
    for other, (_, marker) in SECTIONS.items():
        if other != name:
            expect(page.locator(marker)).to_have_count(0)


def assert_header_fits(page: Page, width: int) -> None:
    for locator in (page.locator(".topbar .user"),
                    page.get_by_role("button", name="Log out"), nav(page)):
        box = locator.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
    last = nav(page).get_by_role("link").last.bounding_box()
    assert last is not None and last["x"] + last["width"] <= width, last




@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["1280", "390"])
def test_the_navigation_swaps_sections_and_back_returns(
        page: Page, console_errors: list[str], ten_backups, viewport: dict[str, int]) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size(viewport)
    log_in(page)
    expect(page.locator("#backups")).to_contain_text(str(BACKUPS))
    expect(page.locator("#status-strip .status-health")).to_be_visible()
    mark_document(page)
    sizes = {}  # section: [page width, page height], asserted after Back and Forward
    for name in [*list(SECTIONS)[1:], "Backups"]:
        go_to(page, name)
        expect(page.locator("#status-strip .status-health")).to_be_visible()
        assert_header_fits(page, viewport["width"])
        sizes[name] = page.evaluate(
            "[document.documentElement.scrollWidth, document.body.scrollHeight]")
        page.screenshot(path=str(SHOTS / f"nav-{name.lower()}-{viewport['width']}.png"),
                        full_page=True)

    # Back and Forward: each section again with its content, still without a reload.
    page.go_back()
    assert_shows(page, "Settings")
    page.go_back()
    assert_shows(page, "Activity")
    page.go_forward()
    assert_shows(page, "Settings")
    for name in ("Activity", "Health", "Restores", "Schedules", "Backups"):
        page.go_back()
        assert_shows(page, name)
    expect(page.locator("#backups")).to_contain_text(str(BACKUPS))
    assert_not_reloaded(page)
    assert console_errors == []

    print(f"sections at {viewport['width']} px (width, height): {sizes}")
    too_wide = {name: size for name, size in sizes.items() if size[0] > viewport["width"]}
    assert too_wide == {}, f"wider than the screen: {too_wide}"
    too_long = {name: size for name, size in sizes.items()
                if size[1] >= SCREENS * viewport["height"]}
    assert too_long == {}, f"longer than {SCREENS} screens: {too_long}"


def test_each_section_loads_by_its_url(page: Page, console_errors: list[str]) -> None:
    log_in(page)
    for name, (path, _) in SECTIONS.items():
        page.goto(path)
        assert_shows(page, name)
        link = nav(page).get_by_role("link", name=name, exact=True)
        expect(link).to_have_attribute("href", path)
    # The status strip's link opens the Health section like the navigation does.
    page.goto(SECTIONS["Backups"][0])
    mark_document(page)
    page.locator("#status-strip .status-health").click()
    assert_shows(page, "Health")
    assert_not_reloaded(page)
    assert console_errors == []


def test_a_late_answer_from_a_section_left_behind_is_dropped(
        page: Page, console_errors: list[str]) -> None:
    """The Health section's panel loads itself; its answer, held back until the user has
    moved on to Activity, has nowhere to go (its out-of-band parts least of all)."""
    held = []
    page.route("**/system/backup/monitoring/health", lambda route: held.append(route))
    log_in(page)
    open_section(page, "Health")
    page.wait_for_function("document.querySelector('#health-body.htmx-request') !== null")
    open_section(page, "Activity")
    with page.expect_request_finished(lambda request: request.url.endswith("/health")):
        held[0].continue_()
    # A request sent after the late answer arrived: once it is shown, that one was handled.
    go_to(page, "Settings")
    assert console_errors == []


def test_the_links_work_without_javascript(browser: Browser, base_url: str) -> None:
    context = browser.new_context(base_url=base_url, viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto("/system/backup")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    for name in ("Schedules", "Settings", "Backups"):
        nav(page).get_by_role("link", name=name, exact=True).click()
        path, _ = SECTIONS[name]
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))
        expect(nav(page).locator("[aria-current=page]")).to_have_text(name)
    assert_no_horizontal_overflow(page)
    context.close()
