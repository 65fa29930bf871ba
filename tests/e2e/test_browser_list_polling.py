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
# status htmx got once it has handled the answer.
RELOAD = """() => new Promise(resolve => {
  document.body.addEventListener("htmx:afterOnLoad",
                                 event => resolve(event.detail.xhr.status), {once: true});
  htmx.trigger(document.body, "backups-changed");
})"""
KEPT = "() => document.getElementById('backups').keptMarker === true"


def test_an_unchanged_table_stays_and_a_changed_one_is_swapped(app, page: Page):
    from services.extensions import db
    from services.models import Backup

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
