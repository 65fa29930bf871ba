"""Cheap polling: the backups list's version counter changes with every backup write, in the
same transaction; the API's list answers 304 and the dashboard's list fragment an empty 204
to a client that holds the current tag, before reading a backup or rendering a template."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import template_rendered
from sqlalchemy import event, update

from tests.support.backups import BACKUP
from tests.support.catalog_rows import add_backups as add_rows

LIST = "/system/backup/list"
SEEN = re.compile(r'<section id="backups"[^>]*hx-get="([^"]+)"')


@contextmanager
def watched(app) -> Iterator[dict[str, list]]:
    """The templates rendered and the SQL statements run that read the backups table."""
    from services.extensions import db

    seen: dict[str, list] = {"templates": [], "backup_reads": []}

    def rendered(_sender, template, **_extra) -> None:
        seen["templates"].append(template.name)

    def executed(_conn, _cursor, statement, *_args) -> None:
        if re.search(r"\bFROM backups\b", statement):
            seen["backup_reads"].append(statement)

    with app.app_context():
        engine = db.engine
    template_rendered.connect(rendered, app)
    event.listen(engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        template_rendered.disconnect(rendered, app)


@pytest.fixture
def frozen_minute(monkeypatch) -> None:
    """The fragment's tag includes the minute (its ages read '5 min ago'): held still, so
    that two requests of a test never straddle a minute."""
    from blueprints.dashboard import backups
    from services.models import utcnow

    now = utcnow()
    monkeypatch.setattr(backups, "utcnow", lambda: now)


def add_backups(app, count: int, first: int = 0) -> list[str]:
    with app.app_context():
        return add_rows(count, first)


def version(app) -> int:
    from services import catalog_version

    with app.app_context():
        return catalog_version.current()


def reload_url(html: str) -> str:
    """The URL the list fragment reloads itself with (its tag in ``seen``)."""
    return SEEN.search(html).group(1).replace("&amp;", "&")


def test_an_unchanged_list_is_a_304_that_reads_no_backup(app, api):
    add_backups(app, 3)
    first = api.get(BACKUP, query_string={"type": "full"})
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag.startswith('W/"')
    assert first.headers["Cache-Control"] == "private, no-cache"

    with watched(app) as seen:
        again = api.get(BACKUP, query_string={"type": "full"}, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == tag
    assert seen["backup_reads"] == []

    # Another view, another tag.
    other = api.get(BACKUP, query_string={"type": "incremental"},
                    headers={"If-None-Match": tag})
    assert other.status_code == 200 and other.headers["ETag"] != tag


def test_the_tag_depends_on_the_callers_role(app, client):
    from services.extensions import db
    from services.models import ApiToken
    from tests.support.web import BearerClient

    add_backups(app, 1)
    tokens = []
    with app.app_context():
        for role in ("admin", "viewer"):
            row, token = ApiToken.mint(f"tests-{role}", role)
            db.session.add(row)
            db.session.commit()
            tokens.append(token)
    admin, viewer = (BearerClient(client, token).get(BACKUP) for token in tokens)
    assert admin.get_json() == viewer.get_json()
    assert admin.headers["ETag"] != viewer.headers["ETag"]


def test_every_kind_of_backup_write_changes_the_list(app, api):
    """A flushed change, a copy's change, a bulk UPDATE, a bulk INSERT, a deletion: each
    bumps the version once per commit, and the held tag no longer matches."""
    from services.extensions import db
    from services.models import Backup, BackupCopy

    ids = add_backups(app, 2)

    def changes(write) -> None:
        tag = api.get(BACKUP).headers["ETag"]
        before = version(app)
        with app.app_context():
            write()
            db.session.commit()
        assert version(app) == before + 1
        assert api.get(BACKUP, headers={"If-None-Match": tag}).status_code == 200

    changes(lambda: setattr(db.session.get(Backup, ids[0]), "verification", "corrupted"))
    changes(lambda: db.session.add(BackupCopy(backup_id=ids[0], destination="local")))
    changes(lambda: db.session.execute(update(BackupCopy).values(status="stored")))
    changes(lambda: db.session.execute(
        update(Backup).where(Backup.id == ids[1]).values(size=5)))
    changes(lambda: db.session.delete(db.session.get(Backup, ids[1])))
    before = version(app)
    add_backups(app, 1, first=5)
    assert version(app) == before + 1


def test_a_rolled_back_change_leaves_the_version(app):
    from services.extensions import db
    from services.models import Backup

    backup_id = add_backups(app, 1)[0]
    before = version(app)
    with app.app_context():
        db.session.get(Backup, backup_id).size = 1
        db.session.flush()
        db.session.rollback()
    assert version(app) == before
    with app.app_context():  # a commit that writes no backup leaves it too
        db.session.get(Backup, backup_id)
        db.session.commit()
    assert version(app) == before


def test_an_unchanged_fragment_is_a_204_without_rendering(app, htmx, frozen_minute):
    from services.extensions import db
    from services.models import Backup

    backup_id = add_backups(app, 2)[0]
    first = htmx.request("GET", LIST, query_string={"type": "full"})
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    url = reload_url(first.get_data(as_text=True))
    assert url.startswith(f"{LIST}?type=full&seen=")

    with watched(app) as seen:
        again = htmx.request("GET", url)
        conditional = {**htmx.headers, "If-None-Match": first.headers["ETag"]}
        by_header = htmx.client.get(LIST, query_string={"type": "full"}, headers=conditional)
    assert again.status_code == 204 and again.data == b""
    assert by_header.status_code == 204
    assert seen == {"templates": [], "backup_reads": []}

    with app.app_context():
        db.session.get(Backup, backup_id).verification = "missing"
        db.session.commit()
    with watched(app) as seen:
        changed = htmx.request("GET", url)
    assert changed.status_code == 200
    assert "partials/backups/list.html" in seen["templates"]
    assert reload_url(changed.get_data(as_text=True)) != url


def test_a_first_run_page_carries_no_tag(app, htmx, frozen_minute):
    """An empty catalog shows first steps, which change with the settings: always rendered."""
    response = htmx.request("GET", LIST)
    assert response.status_code == 200 and "ETag" not in response.headers
    assert "seen=" not in reload_url(response.get_data(as_text=True))


def test_a_backup_job_changes_the_fragment(app, htmx, run_worker, frozen_minute):
    """The worker's writes (a real backup, a real RQ worker) bump the version too."""
    created = htmx.create().get_data(as_text=True)
    backup_id = re.search(r'id="backup-(backup-[^"]+)"', created).group(1)
    url = reload_url(created)
    assert htmx.request("GET", url).status_code == 204
    run_worker()
    after = htmx.request("GET", url)
    assert after.status_code == 200
    row = re.search(rf'id="backup-{backup_id}">.*?</tr>', after.get_data(as_text=True), re.S)
    assert "completed" in row.group(0)


def test_totals_are_counted_once_per_version(app, api):
    from services import backups
    from services.extensions import db
    from services.models import Backup

    add_backups(app, 3)
    assert api.get(BACKUP).get_json()["total"] == 3
    with watched(app) as seen:
        assert api.get(BACKUP).get_json()["total"] == 3  # no If-None-Match: a full answer
    assert not [sql for sql in seen["backup_reads"] if "count(" in sql]
    add_backups(app, 1, first=3)
    assert api.get(BACKUP).get_json()["total"] == 4

    with app.app_context():  # an uncommitted change is counted, and not kept
        db.session.delete(db.session.scalars(db.select(Backup)).first())
        db.session.flush()
        assert backups.totals()[0] == 3
        db.session.rollback()
        assert backups.totals()[0] == 4
