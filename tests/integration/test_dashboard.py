"""The HTMX dashboard, driven as htmx drives it: fragments, CSRF header, polling."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from pgbackup import artifact_name
from services.extensions import db
from services.models import Backup, utcnow
from tests.support.web import HX, login

POLLING = 'hx-trigger="every 1s"'


def only_backup(app):
    from services.extensions import db
    from services.models import Backup

    with app.app_context():
        backups = db.session.query(Backup).all()
        assert len(backups) == 1
        return backups[0].id


def set_backup(app, backup_id: str, **fields) -> None:
    from services.extensions import db
    from services.models import Backup

    with app.app_context():
        backup = db.session.get(Backup, backup_id)
        for key, value in fields.items():
            setattr(backup, key, value)
        db.session.commit()


def test_dashboard_needs_login(client):
    response = client.get("/system/backup")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert client.get("/").status_code == 302
    fragment = client.get("/system/backup/list", headers=HX)
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"].startswith("/login")


def test_login_with_the_right_password_only(client):
    refused = login(client, password="wrong")
    assert refused.status_code == 401
    assert "Wrong username or password." in refused.get_data(as_text=True)
    assert client.get("/system/backup").status_code == 302

    response = login(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/system/backup"
    assert client.get("/").headers["Location"].endswith("/system/backup")
    page = client.get("/system/backup").get_data(as_text=True)
    assert 'class="user"' in page and ">admin<" in page
    assert 'action="/logout"' in page


def test_page_has_no_inline_javascript_and_a_strict_csp(client):
    login(client)
    response = client.get("/system/backup")
    page = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert re.findall(r"<script[^>]*>", page) == [
        '<script src="/static/vendor/htmx.min.js" defer>',
        '<script src="/static/js/sections.js" defer>',
        '<script src="/static/js/localtime.js" defer>']
    assert re.findall(r"<script[^>]*>(.*?)</script>", page, re.S) == ["", "", ""]  # no bodies
    assert not re.search(r"\son[a-z]+=|hx-on|javascript:", page)
    assert client.get("/static/vendor/htmx.min.js").status_code == 200


def test_create_needs_the_csrf_header(app, client, htmx):
    refused = client.post("/system/backup", data={"type": "full", "compress": "on"}, headers=HX)
    assert refused.status_code == 400
    assert "CSRF" in refused.get_data(as_text=True)

    response = htmx.create()
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith("<section id=\"backups\"")
    assert "<html" not in fragment
    backup_id = only_backup(app)
    assert artifact_name(backup_id, compressed=True) in fragment
    assert 'class="badge badge-queued"' in fragment
    assert POLLING in fragment
    assert 'id="alerts"' in fragment and 'hx-swap-oob="true"' in fragment


def test_create_refuses_an_unknown_type(htmx):
    response = htmx.request("POST", "/system/backup", data={"type": "everything"})
    assert response.status_code == 400
    assert "unknown backup type" in response.get_data(as_text=True)


def test_create_with_redis_down_shows_an_inline_error(app, htmx):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("redis", None)
    response = htmx.create()
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "<html" not in body and 'class="alert alert-error"' in body
    assert "Redis" in body and "nothing was created" in body
    assert "No backups yet" in htmx.request("GET", "/system/backup/list").get_data(as_text=True)


def test_progress_polls_while_queued_and_stops_when_the_job_ends(app, htmx, run_worker):
    htmx.create(kind="schema-only", compress=False)
    backup_id = only_backup(app)
    url = f"/system/backup/{backup_id}/progress"

    queued = htmx.request("GET", url)
    html = queued.get_data(as_text=True)
    assert POLLING in html and 'hx-swap="outerHTML"' in html
    assert "Waiting for a worker" in html
    assert f'id="status-{backup_id}" class="badge badge-queued" hx-swap-oob="true"' in html
    assert "HX-Trigger" not in queued.headers

    run_worker()

    finished = htmx.request("GET", url)
    html = finished.get_data(as_text=True)
    assert "hx-trigger" not in html
    assert "Backup completed." in html
    assert 'class="badge badge-completed" hx-swap-oob="true"' in html
    assert finished.headers["HX-Trigger"] == "backups-changed"

    listing = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert "hx-trigger=\"backups-changed from:body\"" in listing
    assert POLLING not in listing
    assert artifact_name(backup_id, compressed=False) in listing
    assert re.search(r"\d+\.\d (KiB|MiB)", listing)
    assert f'href="/api/system/backup/{backup_id}/download"' in card_html(htmx, backup_id)


def test_progress_shows_bytes_tables_and_the_current_table(app, htmx):
    from rq.job import Job

    from jobs.queues import redis_connection

    htmx.create()
    backup_id = only_backup(app)
    set_backup(app, backup_id, status="running")
    with app.app_context():
        job = Job.fetch(backup_id, connection=redis_connection())
        job.meta["progress"] = {"bytesWritten": 1468006, "currentTable": "public.film",
                                "tablesDone": 3, "tablesTotal": 21}
        job.save_meta()

    html = htmx.request("GET", f"/system/backup/{backup_id}/progress").get_data(as_text=True)
    assert POLLING in html
    assert '<progress max="21" value="3"' in html
    assert "1.4 MiB written · 3/21 tables and partitions" in html and "public.film" in html
    assert 'class="badge badge-running" hx-swap-oob="true"' in html


def test_delete_removes_a_finished_backup_and_refuses_a_running_one(app, client, htmx,
                                                                   run_worker):
    htmx.create()
    backup_id = only_backup(app)
    set_backup(app, backup_id, status="running")
    url = f"/system/backup/{backup_id}"

    busy = htmx.request("DELETE", url)
    assert busy.status_code == 409
    assert "wait for its job to end" in busy.get_data(as_text=True)

    set_backup(app, backup_id, status="queued")
    run_worker()
    assert client.get(f"/api/system/backup/{backup_id}/download").status_code == 200
    assert client.delete(url, headers=HX).status_code == 400  # no CSRF header

    deleted = htmx.request("DELETE", url)
    assert deleted.status_code == 200 and deleted.headers["HX-Trigger"] == "backups-changed"
    assert "No backups yet" in htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert client.get(f"/api/system/backup/{backup_id}").status_code == 404


def test_summary_is_calm_before_the_first_backup_and_warns_when_none_completed(app, htmx):
    empty = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert "figure-warn" not in empty and "create your first backup above" in empty
    # The table's place holds the first steps: the form above, and a nightly schedule.
    assert "No backups yet: nothing is wrong. Two first steps:" in empty
    assert 'href="/system/backup#new-backup">Create your first backup</a>' in empty
    assert 'href="/system/backup/section/schedules">Set up a nightly schedule</a>' in empty

    with app.app_context():
        db.session.add(Backup(id="backup-2024-01-15T10-30-00-000Z", database="shop",
                              type="full", status="failed", compress=True, origin="manual",
                              filename="backup-2024-01-15T10-30-00-000Z.dump.zst",
                              created_at=utcnow()))
        db.session.commit()
    failed = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert "figure-warn" in failed and "none completed yet" in failed


def test_summary_warns_without_a_recent_completed_backup(app, htmx, run_worker):
    htmx.create()
    run_worker()
    fresh = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert "figure-warn" not in fresh
    assert re.search(r'figure-value">1<', fresh)

    from services.models import utcnow

    set_backup(app, only_backup(app), finished_at=utcnow() - timedelta(hours=25))
    stale = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert "figure-warn" in stale and "1 d ago" in stale and "older than 24 h" in stale


@pytest.mark.parametrize(("size", "text"), [
    (None, "—"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"),
    (1468006, "1.4 MiB"), (5 * 1024**3, "5.0 GiB"), (3 * 1024**5, "3072.0 TiB"),
])
def test_filesize(size, text):
    from services.formatting import filesize

    assert filesize(size) == text


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(seconds=5), "just now"), (timedelta(minutes=5), "5 min ago"),
    (timedelta(hours=3, minutes=59), "3 h ago"), (timedelta(days=2, hours=1), "2 d ago"),
])
def test_ago(delta, text):
    from blueprints.dashboard.labels import ago

    assert ago(delta) == text


# Verification and restore


RESTORED = "restored_copy"


@pytest.fixture
def restored_copy(pg_server):
    """The name tests restore into; dropped afterwards, pass or fail."""
    pg_server.drop_database(RESTORED)
    yield RESTORED
    pg_server.drop_database(RESTORED)


def completed_backup(app, htmx, run_worker) -> str:
    htmx.create()
    run_worker()  # the backup, then its automatic integrity check
    backup_id = only_backup(app)
    listing = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert f'id="status-{backup_id}" class="badge badge-completed"' in listing
    return backup_id


def card_html(htmx, backup_id: str) -> str:
    """The backup's detail panel (what its card in the list used to show)."""
    return htmx.request("GET", f"/system/backup/backups/{backup_id}").get_data(as_text=True)


def test_a_new_backup_is_checked_automatically_and_shows_valid(app, htmx, run_worker):
    backup_id = completed_backup(app, htmx, run_worker)
    card = card_html(htmx, backup_id)
    assert 'class="vbadge vbadge-valid">Valid<' in card
    assert "Integrity check · " in card and " UTC" in card
    assert re.search(r"\d+ checks, all passed", card)
    for name in ("sha256", "decompress", "toc"):
        assert f'<td class="check-name">{name}</td>' in card
    assert 'name="level"' in card and 'value="restore"' in card
    assert f'hx-get="/system/backup/{backup_id}/restore"' in card
    assert POLLING not in card

    expired = htmx.request("GET", f"/system/backup/{backup_id}/verification/verify-gone")
    assert expired.status_code == 200
    assert POLLING not in expired.get_data(as_text=True)
    assert 'class="verify-form"' in expired.get_data(as_text=True)


def test_verify_polls_the_job_then_shows_the_test_restore_checks(app, htmx, run_worker):
    backup_id = completed_backup(app, htmx, run_worker)
    response = htmx.request("POST", f"/system/backup/{backup_id}/verify",
                            data={"level": "restore"})
    assert response.status_code == 200
    block = response.get_data(as_text=True)
    assert block.lstrip().startswith(f'<div class="verification" id="verification-{backup_id}"')
    poll_url = re.search(r'hx-get="([^"]+)"', block).group(1).replace("&amp;", "&")
    assert poll_url.startswith(f"/system/backup/{backup_id}/verification/verify-restore-")
    assert POLLING in block and "Test restore: waiting for a worker" in block
    assert 'class="verify-form"' not in block

    # A reloaded list finds the queued job in RQ and keeps polling it.
    assert poll_url.split("?")[0] in card_html(htmx, backup_id)

    run_worker()

    done = htmx.request("GET", poll_url).get_data(as_text=True)
    assert POLLING not in done and 'class="verify-form"' in done
    assert 'class="vbadge vbadge-valid">Valid<' in done
    assert "Test restore · " in done
    assert "public.actor" in done and "check-fail" not in done
    assert poll_url.split("?")[0] not in card_html(htmx, backup_id)


def test_verification_progress_shows_the_test_restore(app, htmx, run_worker):
    from rq.job import Job

    from jobs.queues import redis_connection

    backup_id = completed_backup(app, htmx, run_worker)
    block = htmx.request("POST", f"/system/backup/{backup_id}/verify",
                         data={"level": "restore"}).get_data(as_text=True)
    poll_url = re.search(r'hx-get="([^"]+)"', block).group(1).replace("&amp;", "&")
    with app.app_context():
        job = Job.fetch(poll_url.split("/")[-1].split("?")[0], connection=redis_connection())
        job.meta["progress"] = {"phase": "restore", "itemsDone": 12, "itemsTotal": 40,
                                "currentItem": "TABLE DATA public.film"}
        job.save_meta()
    html = htmx.request("GET", poll_url).get_data(as_text=True)
    assert POLLING in html and '<progress max="40" value="12"' in html
    assert "Test restore: restoring into a scratch database · 12/40 items" in html
    assert "TABLE DATA public.film" in html


def test_a_corrupted_artifact_shows_corrupted_with_the_failed_check_open(app, htmx,
                                                                        run_worker):
    from pathlib import Path

    backup_id = completed_backup(app, htmx, run_worker)
    artifact = Path(app.config["BACKUP_DIR"]) / artifact_name(backup_id, compressed=True)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))

    htmx.request("POST", f"/system/backup/{backup_id}/verify", data={"level": "integrity"})
    run_worker()

    card = card_html(htmx, backup_id)
    assert 'class="vbadge vbadge-corrupted">Corrupted<' in card
    assert re.search(r'check-fail">\d+ failed', card)
    # Failed checks come first in the checks table.
    assert re.search(r'<tbody>\s*<tr class="check-row check-fail">\s*<td class="check-name">sha256'
                     r'</td>\s*<td class="check-result">.*failed</td>', card)


def test_verify_refusals_are_readable(app, htmx):
    htmx.create()
    backup_id = only_backup(app)
    queued = htmx.request("POST", f"/system/backup/{backup_id}/verify", data={"level": "restore"})
    assert queued.status_code == 409
    assert "only completed backups" in queued.get_data(as_text=True)
    set_backup(app, backup_id, status="completed")
    unknown = htmx.request("POST", f"/system/backup/{backup_id}/verify", data={"level": "all"})
    assert unknown.status_code == 400
    assert "unknown level" in unknown.get_data(as_text=True)
    assert "<html" not in unknown.get_data(as_text=True)


def test_the_list_looks_again_while_a_fresh_backup_is_unverified(app, htmx, run_worker):
    from services.models import utcnow

    backup_id = completed_backup(app, htmx, run_worker)
    assert "every 5s" not in htmx.request("GET", "/system/backup/list").get_data(as_text=True)

    # Completed a moment ago, its integrity check not queued yet: look again soon.
    set_backup(app, backup_id, verification="unverified", verification_result=None,
               verified_at=None, finished_at=utcnow())
    fresh = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert 'hx-trigger="backups-changed from:body, every 5s"' in fresh
    assert 'class="vbadge vbadge-unverified">Unverified<' in fresh
    assert "Not checked yet" in card_html(htmx, backup_id)

    set_backup(app, backup_id, finished_at=utcnow() - timedelta(minutes=1))
    assert "every 5s" not in htmx.request("GET", "/system/backup/list").get_data(as_text=True)


def change_the_database(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM payment_p2022_02 WHERE payment_id % 2 = 0")
        conn.execute("CREATE TABLE after_backup (id int)")
        conn.execute("DROP TABLE film_actor CASCADE")


def test_dry_run_panel_over_the_database_shows_changes_connections_and_the_confirmation(
    app, htmx, run_worker, pagila
):
    import psycopg

    backup_id = completed_backup(app, htmx, run_worker)
    change_the_database(pagila)
    protected = app.config["TARGET_DATABASE"]
    with psycopg.connect(pagila, application_name="till-42") as held_open:
        response = htmx.request("GET", f"/system/backup/{backup_id}/restore")
        held_open.execute("SELECT 1")
    assert response.status_code == 200
    panel = response.get_data(as_text=True)
    assert "<html" not in panel
    assert f'Dry run of a restore over <span class="dbname">{protected}</span>' in panel
    assert "public.<wbr>after_backup" in panel and "public.<wbr>film_actor" in panel
    assert re.search(r"payment_p2022_02</td>\s*<td[^>]*>[\d,]+</td>\s*<td[^>]*>[\d,]+</td>\s*"
                     r'<td class="num delta-up">\+[\d,]+</td>', panel)
    assert "till-42" in panel  # the open connection that would be cut
    assert "Estimated time" in panel
    assert f'Type <span class="dbname">{protected}</span> to confirm' in panel
    assert 'name="confirm_database"' in panel
    assert 'name="target_database"' in panel and "Dry-run this name" in panel
    assert not re.search(r"\son[a-z]+=|hx-on|<script|javascript:", panel)


def test_dry_run_panel_for_a_new_database(app, htmx, run_worker):
    backup_id = completed_backup(app, htmx, run_worker)
    response = htmx.request("GET", f"/system/backup/{backup_id}/restore",
                            query_string={"target_database": RESTORED})
    panel = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'into the new database <span class="dbname">{RESTORED}</span>' in panel
    assert f'value="{RESTORED}"' in panel
    assert 'name="confirm_database"' not in panel  # overwriting needs its own dry run
    assert "Dry-run a restore over" in panel
    assert "issue-error" not in panel

    bad = htmx.request("GET", f"/system/backup/{backup_id}/restore",
                       query_string={"target_database": "bad name;"})
    assert bad.status_code == 400
    assert bad.headers["HX-Retarget"] == "#restore-error-new-database"
    assert "invalid database name" in bad.get_data(as_text=True)


def test_dry_run_errors_are_red_and_hide_the_overwrite_confirmation(app, htmx, run_worker):
    from pathlib import Path

    backup_id = completed_backup(app, htmx, run_worker)
    artifact = Path(app.config["BACKUP_DIR"]) / artifact_name(backup_id, compressed=True)
    artifact.write_bytes(b"x" * artifact.stat().st_size)  # same size: only a hash finds it
    panel = htmx.request("GET", f"/system/backup/{backup_id}/restore").get_data(as_text=True)
    assert "The restore cannot go ahead" in panel
    assert re.search(r'<li class="issue issue-error">[^<]*failed its integrity check', panel)
    assert 'name="confirm_database"' not in panel
    assert "Not possible: the dry run found the errors shown above." in panel


def test_overwrite_is_refused_unless_the_database_name_is_typed(app, htmx, run_worker, pagila):
    from tests.support.dbcompare import table_fingerprints

    backup_id = completed_backup(app, htmx, run_worker)
    before = table_fingerprints(pagila)
    for typed in ("", "postgres", app.config["TARGET_DATABASE"] + "x"):
        refused = htmx.request("POST", f"/system/backup/{backup_id}/restore",
                               data={"mode": "overwrite", "confirm_database": typed})
        assert refused.status_code == 400
        assert refused.headers["HX-Retarget"] == "#restore-error-overwrite"
        html = refused.get_data(as_text=True)
        assert "type its name exactly" in html and "Nothing was restored" in html
        assert 'class="alert alert-error"' in html and "<html" not in html
    run_worker()
    assert table_fingerprints(pagila) == before
    assert "No restores yet" in htmx.request("GET", "/system/backup/restores").get_data(
        as_text=True)


def test_restore_into_a_new_database_runs_and_shows_in_the_restores_panel(
    app, htmx, run_worker, pagila, restored_copy, pg_server
):
    from tests.support.dbcompare import table_fingerprints

    backup_id = completed_backup(app, htmx, run_worker)
    response = htmx.request("POST", f"/system/backup/{backup_id}/restore",
                            data={"mode": "new-database", "target_database": restored_copy})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Restore queued" in html and restored_copy in html
    assert response.headers["HX-Trigger"] == "restores-changed"  # the restores list reloads
    restore_id = re.search(r'id="restore-state-(restore-[^"]+)"', html).group(1)
    state_url = f"/system/backup/restores/{restore_id}/state"
    assert f'hx-get="{state_url}"' in html and POLLING in html  # the panel follows it
    listed = htmx.request("GET", "/system/backup/restores").get_data(as_text=True)
    assert f'id="status-{restore_id}" class="badge badge-queued"' in listed
    progress_url = f"/system/backup/restores/{restore_id}/progress"
    assert f'hx-get="{progress_url}"' in listed and POLLING in listed

    waiting = htmx.request("GET", progress_url).get_data(as_text=True)
    assert "Waiting for a worker" in waiting and POLLING in waiting

    again = htmx.request("POST", f"/system/backup/{backup_id}/restore",
                         data={"mode": "new-database", "target_database": "other_copy"})
    assert again.status_code == 409
    assert again.headers["HX-Retarget"] == "#restore-error-new-database"
    assert "one at a time" in again.get_data(as_text=True)

    run_worker()

    finished = htmx.request("GET", progress_url)
    assert finished.headers["HX-Trigger"] == "restores-changed, backups-changed"
    assert "Restore completed." in finished.get_data(as_text=True)
    assert POLLING not in finished.get_data(as_text=True)
    # The restore panel ends in the final state too, and stops polling.
    final = htmx.request("GET", state_url)
    assert final.headers["HX-Trigger"] == "restores-changed, backups-changed"
    assert "<h2>Restore completed</h2>" in final.get_data(as_text=True)
    assert "Matches the backup's manifest" in final.get_data(as_text=True)
    assert POLLING not in final.get_data(as_text=True)

    panel = htmx.request("GET", "/system/backup/restores").get_data(as_text=True)
    assert f'id="status-{restore_id}" class="badge badge-completed"' in panel
    assert "Into a new database" in panel and restored_copy in panel
    assert "Matches the backup's manifest · " in panel
    assert POLLING not in panel
    assert table_fingerprints(pg_server.url(restored_copy)) == table_fingerprints(pagila)
    page = htmx.request("GET", "/system/backup/section/restores").get_data(as_text=True)
    assert "<h2>Restores</h2>" in page and f'id="restore-{restore_id}"' in page
    assert not re.search(r"\son[a-z]+=|hx-on|javascript:", page)

    exists = htmx.request("POST", f"/system/backup/{backup_id}/restore",
                          data={"mode": "new-database", "target_database": restored_copy})
    assert exists.status_code == 409 and "already exists" in exists.get_data(as_text=True)


def test_restore_over_the_database_names_its_safety_backup(app, htmx, run_worker, pagila):
    from tests.support.dbcompare import table_fingerprints

    backup_id = completed_backup(app, htmx, run_worker)
    at_backup = table_fingerprints(pagila)
    change_the_database(pagila)
    response = htmx.request("POST", f"/system/backup/{backup_id}/restore", data={
        "mode": "overwrite", "confirm_database": app.config["TARGET_DATABASE"]})
    assert response.status_code == 200
    assert "A safety backup of the current data is taken first" in response.get_data(
        as_text=True)
    run_worker()

    assert table_fingerprints(pagila) == at_backup
    panel = htmx.request("GET", "/system/backup/restores").get_data(as_text=True)
    assert "badge badge-completed" in panel and "Over the database" in panel
    safety_id = re.search(r'safety backup: <span class="filename">(backup-[^<]+)</span>',
                          panel).group(1)
    listing = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert f'id="backup-{safety_id}"' in listing and '<span class="tag">safety</span>' in listing


def test_rehearsal_is_queued_from_the_panel(app, htmx, run_worker):
    backup_id = completed_backup(app, htmx, run_worker)
    response = htmx.request("POST", f"/system/backup/{backup_id}/restore",
                            data={"mode": "rehearsal"})
    assert response.status_code == 200
    assert "Rehearsing the restore" in response.get_data(as_text=True)
    run_worker()
    panel = htmx.request("GET", "/system/backup/restores").get_data(as_text=True)
    assert "Rehearsal" in panel and "badge badge-completed" in panel
    assert "scratch database dropped" in panel


def test_restore_progress_shows_the_safety_backup_then_the_restore(app, htmx, run_worker):
    from rq.job import Job

    from jobs.queues import redis_connection
    from services.extensions import db
    from services.models import Restore

    backup_id = completed_backup(app, htmx, run_worker)
    html = htmx.request("POST", f"/system/backup/{backup_id}/restore", data={
        "mode": "overwrite", "confirm_database": app.config["TARGET_DATABASE"]}
    ).get_data(as_text=True)
    restore_id = re.search(r'id="restore-state-(restore-[^"]+)"', html).group(1)
    with app.app_context():
        db.session.get(Restore, restore_id).status = "running"
        db.session.commit()
        job = Job.fetch(restore_id, connection=redis_connection())

    def progress(**fields) -> str:
        with app.app_context():
            job.meta["progress"] = fields
            job.save_meta()
        return htmx.request("GET", f"/system/backup/restores/{restore_id}/progress").get_data(
            as_text=True)

    safety = progress(phase="safety-backup", bytesWritten=2 * 1024**2, currentTable="public.film",
                      tablesDone=4, tablesTotal=21)
    assert "Safety backup: 2.0 MiB written" in safety and "public.film" in safety
    assert '<progress max="21" value="4"' in safety and POLLING in safety
    assert f'id="status-{restore_id}" class="badge badge-running" hx-swap-oob="true"' in safety

    restoring = progress(phase="restore", itemsDone=12, itemsTotal=40,
                         currentItem="TABLE DATA public.rental")
    assert "Restoring · 12/40 items" in restoring and "TABLE DATA public.rental" in restoring
    assert '<progress max="40" value="12"' in restoring


@pytest.mark.parametrize(("millis", "text"), [
    (None, "—"), (850, "850 ms"), (4200, "4.2 s"), (185_000, "3 min 05 s"),
    (7_620_000, "2 h 07 min"),
])
def test_duration(millis, text):
    from services.formatting import format_duration as duration

    assert duration(millis) == text
