"""The backups table's reload in Debian's headless Chromium: an unchanged list answers 204,
which htmx leaves alone (the same element stays, nothing is swapped), and a changed one is
swapped in."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import log_in
from tests.support.catalog_rows import add_backups

pytestmark = pytest.mark.browser

# The table's own reload, as a finished job's progress poll sets it off; resolves to the
# status htmx got for the table once it has handled the answer. The chains panel reloads on
# the same event: its answer is not the one awaited.
RELOAD = """() => new Promise(resolve => {
  const listener = event => {
    if (!event.detail.pathInfo.requestPath.startsWith("/system/backup/list")) return;
    document.body.removeEventListener("htmx:afterOnLoad", listener);
    resolve(event.detail.xhr.status);
  };
  document.body.addEventListener("htmx:afterOnLoad", listener);
  htmx.trigger(document.body, "backups-changed");
})"""
KEPT = "() => document.getElementById('backups').keptMarker === true"


def test_an_unchanged_table_stays_and_a_changed_one_is_swapped(app, page: Page, monkeypatch):
    from services.extensions import db
    from services.models import Backup, utcnow

    # The tag changes with the minute (ages read "5 min ago"): hold the table's clock still,
    # or a minute that turns between two reloads makes one more render.
    clock = utcnow()
    monkeypatch.setattr("blueprints.dashboard.backups.utcnow", lambda: clock)

    with app.app_context():
        newest = add_backups(3)[0]
    log_in(page)
    expect(page.locator("#backups tbody tr.backup-row")).to_have_count(3)
    page.evaluate("() => { document.getElementById('backups').keptMarker = true; }")

    assert page.evaluate(RELOAD) == 204
    assert page.evaluate(KEPT), "an unchanged table was swapped"
    expect(page.locator("#backups tbody tr.backup-row")).to_have_count(3)

    with app.app_context():
        db.session.get(Backup, newest).verification = "corrupted"
        db.session.commit()
    assert page.evaluate(RELOAD) == 200
    assert not page.evaluate(KEPT), "a changed table was not swapped"
    expect(page.locator(f"#vcell-{newest}")).to_contain_text("Corrupted")
    assert page.evaluate(RELOAD) == 204  # the new table reloads with its own tag
