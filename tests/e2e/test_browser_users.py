"""Users and API tokens in Debian's headless Chromium: an admin adds an operator, creates a
token that is shown once and works, then revokes it; no reload, no console error, no
overflow at 390 px."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    LAPTOP,
    PHONE,
    assert_no_horizontal_overflow,
    assert_not_reloaded,
    log_in,
    mark_document,
    screenshot,
)

pytestmark = pytest.mark.browser


def api_status(app, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return app.test_client().get("/api/system/backup", headers=headers).status_code


def test_an_admin_adds_an_operator_and_a_token_shown_once(
        app, page: Page, console_errors: list[str]) -> None:
    log_in(page)
    page.goto("/system/backup/users")
    expect(page.locator('link[href="/static/css/users.css"]')).to_have_count(1)
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    mark_document(page)

    # A new operator.
    users = page.locator("#users")
    form = page.locator("#user-form")
    form.get_by_label("Username").fill("night-ops")
    form.get_by_label("Role").select_option("operator")
    form.get_by_label("Password").fill("operator password 1")
    form.get_by_role("button", name="Add user").click()
    expect(users.locator(".alert-info")).to_have_text("User night-ops created (operator).")
    row = users.locator('tr[data-username="night-ops"]')
    expect(row.get_by_label("Role of night-ops")).to_have_value("operator")
    expect(row.get_by_role("button", name="End sessions")).to_be_visible()
    expect(users.locator('tr[data-username="admin"]')).not_to_contain_text("Delete")
    expect(page.locator("#user-form").get_by_label("Username")).to_have_value("")

    # A token, shown once.
    tokens = page.locator("#tokens")
    token_form = page.locator("#token-form")
    token_form.get_by_label("Name").fill("e2e-cron")
    token_form.get_by_label("Role").select_option("viewer")
    token_form.get_by_label("Expires after (days)").fill("30")
    token_form.get_by_role("button", name="Create token").click()
    created = tokens.locator(".token-created")
    expect(created).to_contain_text("it will not be shown again")
    token = created.locator(".token-value").inner_text().strip()
    assert re.fullmatch(r"pbm_[A-Za-z0-9_-]{40,}", token)
    assert api_status(app, token) == 200
    token_row = tokens.locator('tr[data-name="e2e-cron"]')
    expect(token_row.locator(".mbadge")).to_have_text("active")
    screenshot(page, "users-token", LAPTOP)

    created.get_by_role("button", name="Done: I have stored it").click()
    expect(tokens.locator(".token-created")).to_have_count(0)
    assert token not in page.content()

    # Revoked: the token stops working at once.
    page.once("dialog", lambda dialog: dialog.accept())
    token_row.get_by_role("button", name="Revoke").click()
    expect(tokens.locator(".alert-info")).to_contain_text("Token e2e-cron revoked")
    expect(token_row.locator(".mbadge")).to_have_text("revoked")
    expect(token_row.get_by_role("button", name="Revoke")).to_have_count(0)
    assert api_status(app, token) == 401
    assert_not_reloaded(page)

    screenshot(page, "users-phone", PHONE)
    assert_no_horizontal_overflow(page)
    page.reload()
    expect(page.locator('tr[data-name="e2e-cron"]')).to_contain_text("revoked")
    assert token not in page.content()
    assert console_errors == []
