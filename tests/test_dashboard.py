"""The HTMX dashboard, driven as htmx drives it: fragments, CSRF header, polling."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from pgbackup import artifact_name
from tests.conftest import ADMIN_PASSWORD

HX = {"HX-Request": "true"}
POLLING = 'hx-trigger="every 1s"'


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def log_in(client, password: str = ADMIN_PASSWORD):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={
        "username": "admin", "password": password, "csrf_token": token})


@pytest.fixture
def htmx(client):
    """A logged-in client sending what htmx sends: HX-Request and the page's CSRF header."""
    assert log_in(client).status_code == 302
    page = client.get("/system/backup").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    headers = {**HX, "X-CSRFToken": token}

    class HtmxClient:
        def request(self, method: str, path: str, **kwargs):
            return client.open(path, method=method, headers=headers, **kwargs)

        def create(self, kind: str = "full", compress: bool = True):
            data = {"type": kind, **({"compress": "on"} if compress else {})}
            return self.request("POST", "/system/backup", data=data)

    return HtmxClient()


def only_backup(app):
    from extensions import db
    from models import Backup

    with app.app_context():
        backups = db.session.query(Backup).all()
        assert len(backups) == 1
        return backups[0].id


def set_backup(app, backup_id: str, **fields) -> None:
    from extensions import db
    from models import Backup

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
    refused = log_in(client, password="wrong")
    assert refused.status_code == 401
    assert "Wrong username or password." in refused.get_data(as_text=True)
    assert client.get("/system/backup").status_code == 302

    response = log_in(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/system/backup"
    assert client.get("/").headers["Location"].endswith("/system/backup")
    page = client.get("/system/backup").get_data(as_text=True)
    assert 'class="user"' in page and ">admin<" in page
    assert 'action="/logout"' in page


def test_page_has_no_inline_javascript_and_a_strict_csp(client):
    log_in(client)
    response = client.get("/system/backup")
    page = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert re.findall(r"<script[^>]*>", page) == [
        '<script src="/static/vendor/htmx.min.js" defer>']
    assert "</script>" in page and "<script" not in page.split("</script>", 1)[1]
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
    assert f'href="/api/system/backup/{backup_id}/download"' in listing


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
    assert "1.4 MiB written · 3/21 tables" in html and "public.film" in html
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
    assert deleted.status_code == 200
    assert "No backups yet" in deleted.get_data(as_text=True)
    assert client.get(f"/api/system/backup/{backup_id}").status_code == 404


def test_summary_warns_without_a_recent_completed_backup(app, htmx, run_worker):
    empty = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert "figure-warn" in empty and "no completed backup yet" in empty

    htmx.create()
    run_worker()
    fresh = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert "figure-warn" not in fresh
    assert re.search(r'figure-value">1<', fresh)

    from models import utcnow

    set_backup(app, only_backup(app), finished_at=utcnow() - timedelta(hours=25))
    stale = htmx.request("GET", "/system/backup/list").get_data(as_text=True)
    assert "figure-warn" in stale and "1 d ago" in stale and "older than 24 h" in stale


@pytest.mark.parametrize(("size", "text"), [
    (None, "—"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"),
    (1468006, "1.4 MiB"), (5 * 1024**3, "5.0 GiB"), (3 * 1024**5, "3072.0 TiB"),
])
def test_filesize(size, text):
    from formatting import filesize

    assert filesize(size) == text


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(seconds=5), "just now"), (timedelta(minutes=5), "5 min ago"),
    (timedelta(hours=3, minutes=59), "3 h ago"), (timedelta(days=2, hours=1), "2 d ago"),
])
def test_ago(delta, text):
    from blueprints.dashboard import ago

    assert ago(delta) == text
