"""The activity panel in Debian's headless Chromium, at 1280 px and 390 px: a token's calls
are one event each, a conflict reads ``conflict``, and the kind, actor and outcome filters
swap the list without a reload; no console error, no CSP violation, no overflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    CSP_LISTENER,
    LAPTOP,
    PHONE,
    assert_no_horizontal_overflow,
    assert_not_reloaded,
    element_screenshot,
    log_in,
    mark_document,
)
from tests.support.auth import token_for

pytestmark = [pytest.mark.browser, pytest.mark.empty_target]

SHOTS = Path("/tmp/shots")


def token_calls(app, client) -> str:
    """An operator token's backup (202), a verification too early (409) and a read; returns
    the backup's id."""
    headers = {"Authorization": f"Bearer {token_for(app, 'operator')}"}
    backup_id = client.post("/api/system/backup", json={"type": "full"},
                            headers=headers).get_json()["backupId"]
    assert client.post("/api/system/backup/verify", json={"backupId": backup_id},
                       headers=headers).status_code == 409
    assert client.get("/api/system/backup", headers=headers).status_code == 200
    return backup_id


def open_activity(page: Page) -> None:
    """The Activity section, from the navigation."""
    page.locator("#section-nav").get_by_role("link", name="Activity").click()
    expect(page.locator("#activity")).to_be_visible()


def shoot(page: Page, name: str, viewport: dict[str, int]) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.set_viewport_size(viewport)
    # caret="initial": Playwright's default hides the caret with an inline style and leaves
    # style="" on the focused input, which htmx's settling copies (a CSP violation).
    element_screenshot(page, "#activity", str(SHOTS / f"activity-{name}.png"), caret="initial")


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_filtering_the_activity_by_kind_actor_and_outcome(
        app, client, page: Page, console_errors: list[str], viewport: dict[str, int]) -> None:
    backup_id = token_calls(app, client)
    page.set_viewport_size(viewport)
    page.add_init_script(CSP_LISTENER)
    log_in(page)
    mark_document(page)
    open_activity(page)
    size = "laptop" if viewport == LAPTOP else "phone"

    panel = page.locator("#activity")
    rows = panel.locator(".activity-row")
    expect(rows.filter(has_text="Log in")).to_have_count(1)
    by_token = rows.filter(has_text="token:operator-token")
    expect(by_token).to_have_count(2)  # the backup and the refused verification, not the read
    shoot(page, f"{size}-all", viewport)

    panel.get_by_label("Kind").select_option("backup")
    expect(rows.filter(has_text="Log in")).to_have_count(0)
    expect(rows).to_have_count(2)
    expect(panel.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", "/api/system/activity/export?format=csv&kind=backup")

    panel.get_by_label("Outcome").select_option("conflict")
    expect(rows).to_have_count(1)
    conflict = rows.first
    expect(conflict.locator(".mbadge")).to_have_text("conflict")
    expect(conflict.locator(".mbadge-conflict")).to_be_visible()
    expect(conflict).to_contain_text("Verification requested")
    expect(conflict).to_contain_text("POST -> 409 backup_not_completed")
    expect(panel.get_by_label("Kind")).to_have_value("backup")  # the swap kept the form
    shoot(page, f"{size}-conflict", viewport)

    panel.get_by_label("Outcome").select_option("")
    expect(rows).to_have_count(2)  # swapped: typing now is not typing into the old form
    actor = panel.get_by_label("Who")
    actor.fill("admin")
    actor.press("Enter")
    expect(panel.locator(".empty")).to_have_text("No event matches these filters.")
    actor = panel.get_by_label("Who")
    actor.fill("token:operator-token")
    actor.press("Enter")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text=backup_id)).to_have_count(1)

    panel.get_by_role("button", name="Clear").click()
    expect(rows.filter(has_text="Log in")).to_have_count(1)
    expect(panel.get_by_label("Kind")).to_have_value("")
    expect(panel.get_by_label("Who")).to_have_value("")
    if viewport == PHONE:
        assert_no_horizontal_overflow(page)
    assert_not_reloaded(page)
    shoot(page, f"{size}-cleared", viewport)

    assert page.evaluate("window.cspViolations") == []
    assert console_errors == []


def test_the_filters_wait_for_the_answer_to_a_choice(
        app, client, page: Page, console_errors: list[str]) -> None:
    """A second choice made while the first is on its way is not lost to the first answer:
    the controls are disabled until it comes, and then apply to the new panel."""
    token_calls(app, client)
    log_in(page)
    open_activity(page)
    page.evaluate("""() => { window.outcomeDisabled = new Promise(resolve =>
      document.body.addEventListener('htmx:beforeRequest', () => setTimeout(
        () => resolve(document.querySelector('#activity-outcome').disabled)), {once: true})); }""")
    panel = page.locator("#activity")
    panel.get_by_label("Kind").select_option("backup")
    panel.get_by_label("Outcome").select_option("conflict")
    assert page.evaluate("() => window.outcomeDisabled") is True
    expect(panel.locator(".activity-row")).to_have_count(1)
    expect(panel.get_by_label("Kind")).to_have_value("backup")
    expect(panel.get_by_label("Outcome")).to_have_value("conflict")
    assert console_errors == []


# In the task that swaps the new panel in (a MutationObserver), before any other event can
# run, pick the outcome filter; the promise says whether htmx sent a request for it.
PICK_OUTCOME_ON_SWAP = """() => { window.outcomeRequested = new Promise(resolve => {
  const old = document.getElementById('activity');
  const observer = new MutationObserver(() => {
    if (document.getElementById('activity') === old) return;
    observer.disconnect();
    document.body.addEventListener('htmx:beforeRequest', () => resolve(true), {once: true});
    const outcome = document.querySelector('#activity-outcome');
    outcome.value = 'conflict';
    outcome.dispatchEvent(new Event('change', {bubbles: true}));
    setTimeout(() => resolve(false), 1000);
  });
  observer.observe(document.body, {childList: true, subtree: true}); }); }"""


def test_a_filter_picked_the_moment_the_panel_is_swapped_applies(
        app, client, page: Page, console_errors: list[str]) -> None:
    """htmx attaches a swapped element's triggers when the swap settles; with its default
    20 ms settle delay, a choice made in between sent nothing (CI saw it)."""
    token_calls(app, client)
    log_in(page)
    open_activity(page)
    page.evaluate(PICK_OUTCOME_ON_SWAP)
    page.locator("#activity").get_by_label("Kind").select_option("backup")
    assert page.evaluate("() => window.outcomeRequested") is True
    expect(page.locator("#activity .activity-row")).to_have_count(1)
    assert console_errors == []


# Set off the panel's own reload; whether htmx's request for it was cancelled.
RELOAD_CANCELLED = """() => {
  let cancelled = null;
  const listener = event => {
    if (event.detail.elt.id === 'activity') cancelled = event.defaultPrevented;
  };
  window.addEventListener('htmx:beforeRequest', listener);
  htmx.trigger(document.body, 'backups-changed');
  window.removeEventListener('htmx:beforeRequest', listener);
  return cancelled;
}"""


def test_the_reload_waits_while_a_name_is_being_typed(
        app, client, page: Page, console_errors: list[str]) -> None:
    token_calls(app, client)
    log_in(page)
    open_activity(page)
    who = page.locator("#activity").get_by_label("Who")
    who.fill("token:oper")
    assert page.evaluate(RELOAD_CANCELLED) is True
    expect(who).to_have_value("token:oper")

    who.fill("")  # back to the applied filter: the reload goes ahead
    with page.expect_response(lambda response: "/monitoring/activity" in response.url):
        assert page.evaluate(RELOAD_CANCELLED) is False
    expect(page.locator("#activity .activity-row").filter(has_text="Log in")).to_have_count(1)
    assert console_errors == []
