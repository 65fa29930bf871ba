"""The monitoring panels in Debian's headless Chromium: health at the top, a backup showing
up in the activity log and the charts without a reload, a notification channel tested
against a real receiver; no console errors, no CSP violation, no overflow at 390 px."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    CSP_LISTENER,
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
)
from tests.support.notifications import http_receiver

pytestmark = pytest.mark.browser


def test_health_activity_charts_and_a_tested_channel(
        app, page: Page, console_errors: list[str], refused: list[int], run_worker) -> None:
    from services import alerts

    with app.app_context():  # no worker, no scheduler: real alerts open
        assert {event.alert.key for event in alerts.evaluate()} >= {
            "health:workers", "health:scheduler"}
    page.add_init_script(CSP_LISTENER)
    log_in(page)
    mark_document(page)
    open_section(page, "Health")

    # Health comes first in its section; with no worker and no scheduler it is red.
    health = page.locator("#health")
    expect(health.locator(".health-body")).to_have_class(re.compile("health-critical"),
                                                         timeout=WAIT_MS)
    expect(health.locator(".health-status")).to_have_text("Critical problem")
    workers = health.locator(".health-problems [data-check='workers']")
    expect(workers).to_contain_text("no worker listens on")
    expect(workers.locator(".health-hint")).to_contain_text("rq worker")
    assert page.locator("#main .section > *").evaluate_all(
        "nodes => nodes.filter(n => n.offsetHeight > 0)[0].id") == "health"
    open_alerts = health.locator(".open-alert")
    expect(open_alerts.first.locator(".mbadge")).to_have_text("critical")
    expect(open_alerts.filter(has_text="no scheduler is running")).to_contain_text("since ")
    expect(health.locator(".health-alerts .count")).to_have_text(str(open_alerts.count()))
    health.locator(".health-all summary").click()
    expect(health.locator("#health-checks .check")).to_have_count(10)
    expect(health.locator("#health-checks")).to_contain_text("no full backup yet")
    expect(page.locator("#chart-size-box")).to_contain_text("No completed backups yet")
    open_section(page, "Activity")
    expect(page.locator("#activity .activity-row").first).to_contain_text("Log in")

    # A backup, taken by a real worker, shows up in every section without a reload.
    open_section(page, "Backups")
    page.get_by_role("button", name="Create backup").click()
    card = page.locator("#backups .backup-row")
    expect(card.locator(".badge")).to_have_text("queued")
    backup_id = card.get_attribute("id").removeprefix("backup-")
    run_worker()
    expect(card.locator(".badge")).to_have_text("completed", timeout=WAIT_MS)

    open_section(page, "Activity")
    taken = page.locator("#activity .activity-row").filter(
        has=page.locator("span[title='backup.run']"))
    expect(taken).to_have_count(1, timeout=WAIT_MS)
    expect(taken).to_contain_text(backup_id)
    expect(taken).to_contain_text("worker")
    expect(taken.locator(".mbadge")).to_have_text("ok")
    requested = page.locator("#activity .activity-row").filter(
        has=page.locator("span[title='backup.create']"))
    expect(requested).to_contain_text("admin")
    expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", "/api/system/activity/export?format=csv")

    open_section(page, "Health")
    dot = page.locator("#chart-size g.series circle")
    expect(dot).to_have_count(1, timeout=WAIT_MS)
    expect(dot.locator("title")).to_contain_text(backup_id)
    expect(page.locator("#chart-duration g.series circle")).to_have_count(1)
    expect(page.locator("#chart-size")).to_contain_text("full (1)")
    expect(page.locator("#chart-storage")).to_contain_text(re.compile(r"% used of "))

    # The health panel refreshes when a backup ends (the event the Backups section's
    # progress poll sends), and the opened list stays open.
    expect(health.locator("#health-checks")).to_contain_text("the newest good full backup",
                                                             timeout=WAIT_MS)
    health.locator(".health-all summary").click()
    with page.expect_response("**/system/backup/monitoring/health"):
        page.evaluate("htmx.trigger(document.body, 'backups-changed')")
    expect(health.locator("#health-checks")).to_contain_text("the newest good full backup")
    expect(health.locator(".health-all")).to_have_attribute("open", "")

    # A webhook channel, tested against a real receiver.
    open_section(page, "Settings")
    with http_receiver() as receiver:
        channels = page.locator("#channels")
        form = channels.locator("#channel-form")
        form.get_by_label("Kind").select_option("email")
        expect(form.get_by_label("SMTP server")).to_be_visible()
        form.get_by_label("Kind").select_option("webhook")
        expect(form.get_by_label("SMTP server")).to_have_count(0)
        form.get_by_label("Name", exact=True).fill("ops-hook")
        form.get_by_label(re.compile("^URL")).fill(receiver.url("/hooks/backups"))
        form.get_by_label(re.compile("^Signing secret")).fill("s3cret-signing")
        form.get_by_role("button", name="Add channel").click()
        channel = channels.locator(".channel").filter(has_text="ops-hook")
        expect(channel).to_have_count(1)
        expect(channel).to_contain_text("Signing secret")
        expect(channel).not_to_contain_text("s3cret-signing")
        expect(channel).to_contain_text("none yet")

        channel.get_by_role("button", name="Send test").click()
        expect(channel.locator(".test-result")).to_have_text(
            "Test sent: the receiver accepted it.", timeout=WAIT_MS)
        expect(channel.locator(".mbadge-delivery-sent")).to_be_visible()
        assert len(receiver.received) == 1
        delivery = page.locator("#deliveries .delivery").first
        expect(delivery).to_have_class(re.compile("delivery-sent"), timeout=WAIT_MS)
        expect(delivery).to_contain_text("ops-hook")

    # A refusal is shown in the form, not as a page.
    page.locator("#channels .channel-new summary").click()
    form = page.locator("#channel-form")
    form.get_by_label("Name", exact=True).fill("ops-hook")
    form.get_by_label(re.compile("^URL")).fill("http://127.0.0.1:9/again")
    form.get_by_role("button", name="Add channel").click()
    expect(page.locator("#channel-form .alert-error")).to_contain_text("exists already")
    expect(page.locator("#channel-form").get_by_label("Name", exact=True)).to_have_value("ops-hook")

    open_section(page, "Activity")
    tested = page.locator("#activity .activity-row").filter(
        has=page.locator("span[title='channel.test']"))
    expect(tested).to_have_count(1)
    assert_not_reloaded(page)

    for section, panel in (("Health", "health"), ("Health", "charts"),
                           ("Activity", "activity"), ("Settings", "channels")):
        open_section(page, section)
        for viewport, width in ((LAPTOP, "laptop"), (PHONE, "phone")):
            screenshot_element(page, f"#{panel}", f"monitoring-{panel}-{width}", viewport)
            assert_no_horizontal_overflow(page)
        page.set_viewport_size(LAPTOP)
    screenshot(page, "monitoring-laptop", LAPTOP)
    screenshot(page, "monitoring-phone", PHONE)

    assert page.evaluate("window.cspViolations") == []
    assert console_errors == []
    assert refused == [409]  # the refused channel (Chromium's network log)
