"""The browser tests' fixtures: Debian's Chromium, a fresh context per test collecting
console errors, and the app on a real threaded HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, watch_console
from tests.support.web import served


@pytest.fixture
def base_url(app) -> Iterator[str]:
    """The app served by a real threaded HTTP server, as the browser needs."""
    with served(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium with "
                    "'apt-get install -y chromium' (never 'playwright install')", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console_errors() -> list[str]:
    return []


@pytest.fixture
def refused() -> list[int]:
    """The 4xx/5xx statuses Chromium logged as failed loads (browser.watch_console)."""
    return []


@pytest.fixture
def page(browser: Browser, base_url: str, console_errors: list[str],
         refused: list[int]) -> Iterator[Page]:
    """A fresh browser context; console errors and uncaught exceptions are collected, and
    every test ends with none of them and no 500 (an unhandled error), whatever else it
    asserts; a deliberate 503 (the queue is down) is a test's own business."""
    context = browser.new_context(base_url=base_url, viewport=LAPTOP)
    page = context.new_page()
    watch_console(page, console_errors, refused)
    yield page
    context.close()
    assert console_errors == [], f"console errors: {console_errors}"
    assert 500 not in refused, f"an internal server error was answered: {refused}"
