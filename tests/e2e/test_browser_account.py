"""The account page in Debian's headless Chromium: set up a second factor from the QR
code's key, then log in with the password and a code from it.

Uses the browser fixtures of conftest.py and the helpers of browser.py.
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ADMIN_PASSWORD
from tests.e2e.browser import (
    CSP_LISTENER,
    PHONE,
    assert_no_horizontal_overflow,
    log_in,
    screenshot,
)

pytestmark = pytest.mark.browser


def test_set_up_a_second_factor_then_log_in_with_it(page: Page,
                                                    console_errors: list[str]) -> None:
    page.add_init_script(CSP_LISTENER)
    log_in(page)
    page.goto("/system/backup/account")
    expect(page.locator(".account-username")).to_have_text("admin")
    expect(page.locator(".totp-status")).to_have_text("off")

    page.get_by_role("button", name="Set up a second factor").click()
    expect(page.locator("svg.totp-qr")).to_be_visible()
    expect(page.locator(".totp-secret")).to_have_text(re.compile(r"^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$"))
    secret = page.locator(".totp-secret").inner_text().replace(" ", "")
    screenshot(page, "account-totp-setup-phone", PHONE)
    assert_no_horizontal_overflow(page)
    page.get_by_label("Code from your app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm and turn on").click()
    expect(page).to_have_url(re.compile(r"/system/backup/account$"))
    expect(page.locator(".alert-message")).to_contain_text("Second factor on")
    expect(page.locator(".totp-status")).to_have_text("on")
    assert page.evaluate("window.cspViolations") == []

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/login/totp$"))
    # The confirmation used the current step; the next step's code is still accepted
    # (one step of clock drift) and has not been used yet.
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/system/backup$"))
    expect(page.locator(".topbar .user")).to_have_text("admin")
    expect(page.get_by_role("button", name="Create backup")).to_be_visible()
    assert page.evaluate("window.cspViolations") == []
    assert console_errors == []
