"""What the browser tests share: Debian's Chromium, sizes, and helpers for a page.

The fixtures (base_url, browser, console_errors, page) are in conftest.py. Needs
/usr/bin/chromium (``apt-get install -y chromium``); Playwright's own browser downloads are
never used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from tests.conftest import ADMIN_PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path("/tmp")
WAIT_MS = 20_000
# A loaded CI machine renders slower than a quiet one: no assertion waits less than 10 s.
expect.set_options(timeout=10_000)

# Records Content-Security-Policy violations; add it with page.add_init_script.
CSP_LISTENER = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(
    `${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


# Chromium's network log, not the page's: every answer with a 4xx or 5xx status is logged
# to the console with this text, whatever the page does with it (htmx logs none of them).
FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of "
                         r"(\d{3})")


def watch_console(page: Page, console_errors: list[str], refused: list[int]) -> None:
    """Collect the page's console errors and uncaught exceptions in ``console_errors``;
    the statuses of Chromium's failed-load lines in ``refused``, for a test to assert."""
    def on_console(message) -> None:
        if message.type != "error":
            return
        failed = FAILED_LOAD.match(message.text)
        if failed:
            refused.append(int(failed.group(1)))
        else:
            console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))


def open_section(page: Page, name: str) -> None:
    """Click ``name`` in the dashboard's navigation; wait until it is the current section
    and its URL is pushed (htmx pushes after the swap settles: a Back before that would
    leave the page)."""
    link = page.locator("#section-nav").get_by_role("link", name=name, exact=True)
    href = link.get_attribute("href")
    link.click()
    expect(page.locator("#section-nav [aria-current=page]")).to_have_text(name)
    expect(page).to_have_url(re.compile(re.escape(href) + "$"))


def log_in(page: Page) -> None:
    page.goto("/system/backup")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/system/backup$"))
    expect(page.locator(".topbar .user")).to_have_text("admin")
    # The scripts are deferred: the table can be on screen before htmx has started.
    page.wait_for_load_state("load")


def mark_document(page: Page) -> None:
    """Tag the live document; a reload or navigation would lose the tag."""
    page.evaluate("window.noReloadMarker = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.noReloadMarker === true"), "the page was reloaded"


def assert_no_horizontal_overflow(page: Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"horizontal overflow: scrollWidth {widths[0]} > {widths[1]}"


def screenshot(page: Page, name: str, viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    page.screenshot(path=str(SCREENSHOTS / f"pgbackup-{name}.png"), full_page=True)


def screenshot_element(page: Page, selector: str, name: str, viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    element_screenshot(page, selector, str(SCREENSHOTS / f"pgbackup-{name}.png"))


def element_screenshot(page: Page, selector: str, path: str, **options: Any) -> None:
    """A panel's picture (``options`` go to Playwright's); a panel that reloads itself
    (outerHTML) while it is taken is taken again, as the new one."""
    for attempt in range(3):
        try:
            page.locator(selector).screenshot(path=path, **options)
            return
        except PlaywrightError as exc:
            if "not attached to the DOM" not in str(exc) or attempt == 2:
                raise


def restore_into_new_database(page: Page, name: str, run_worker) -> Locator:
    """In the open restore panel, restore into the new database ``name``: queued, then
    completed once ``run_worker`` has run; returns the panel's final state."""
    dialog = page.locator("#restore-panel .restore-dialog")
    new_db = dialog.locator(".choice-box").filter(has_text="Restore into a new database")
    new_db.get_by_label("New database name").fill(name)
    new_db.get_by_role("button", name="Restore into new database").click()
    state = page.locator("#restore-panel .restore-started")
    expect(state.get_by_role("heading")).to_have_text("Restore queued")
    expect(state.locator(".progress-text")).to_contain_text("Waiting for a worker")
    run_worker()
    expect(state.get_by_role("heading")).to_have_text("Restore completed", timeout=WAIT_MS)
    return state


def backup_rows(page: Page) -> Locator:
    return page.locator("#backups .backup-row")


def create_backup(page: Page, label: str, run_worker) -> None:
    """A backup of type ``label`` from the New backup form, run by a worker (with its
    automatic integrity check) and watched in the table until it is valid."""
    page.get_by_label(label).check()
    page.get_by_role("button", name="Create backup").click()
    row = backup_rows(page).first
    expect(row.locator(".badge")).to_have_text("queued")
    expect(row.locator(".progress-text")).to_contain_text("Waiting for a worker")
    run_worker()
    expect(row.locator(".badge")).to_have_text("completed", timeout=WAIT_MS)
    expect(row.locator(".vbadge")).to_have_text("Valid", timeout=WAIT_MS)
    expect(row.locator(".progress")).to_have_count(0)
