"""The monitoring panels, driven as htmx drives them: health, alerts, activity, charts and
notification channels, against real PostgreSQL, Redis, RQ workers and an HTTP receiver."""

from __future__ import annotations

import html
import json
import re
import time
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from tests.support.web import HX, BearerClient, csrf_from
from tests.support.workers import wait_for
from tools.localservices import free_port

BASE = "/system/backup/monitoring"
SVG_NS = "{http://www.w3.org/2000/svg}"
INLINE_CODE = re.compile(r"\son[a-z]+=|hx-on|<script|javascript:|\sstyle=")
SECRET = "hook-signing-secret-123"
HOOK = "/hooks/backups"  # a path the `receiver` fixture (tests/conftest.py) answers 204


# ---- helpers ------------------------------------------------------------------------------

def get(htmx, path: str) -> str:
    response = htmx.request("GET", BASE + path)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert not INLINE_CODE.search(body), INLINE_CODE.search(body)
    return body


def svgs(fragment: str) -> dict[str, ET.Element]:
    """Every inline SVG of a fragment, parsed, by id."""
    found = {}
    for text in re.findall(r"<svg\b.*?</svg>", fragment, flags=re.S):
        root = ET.fromstring(text)
        found[root.get("id")] = root
    return found


def series_points(root: ET.Element) -> dict[str, list[str]]:
    """Series name -> the tooltips of its dots."""
    return {group.get("data-series"): [c.find(f"{SVG_NS}title").text
                                       for c in group.iter(f"{SVG_NS}circle")]
            for group in root.iter(f"{SVG_NS}g") if group.get("class") == "series"}


def activity_rows(fragment: str) -> list[dict[str, str]]:
    rows = []
    for row in re.findall(r'<tr class="activity-row.*?</tr>', fragment, flags=re.S):
        cells = dict(re.findall(r'data-label="([^"]+)">(.*?)</td>', row, flags=re.S))
        action = re.search(r'<span title="([^"]+)">', row).group(1)
        outcome = re.search(r'class="mbadge mbadge-(\w+)"', row).group(1)
        rows.append({"action": action, "outcome": outcome,
                     "actor": html.unescape(cells["Who"].strip()),
                     "target": html.unescape(cells["Target"].strip()),
                     "source": cells["From"].strip(), "time": cells["Time (UTC)"]})
    return rows


@pytest.fixture
def api(app, api_token):
    """A client of its own with the bearer token: the htmx client's session cookie would
    take precedence over a token on the same client."""
    return BearerClient(app.test_client(), api_token)


def make_backup(api, kind: str = "full") -> str:
    response = api.post("/api/system/backup", json={"type": kind})
    assert response.status_code == 202
    return response.get_json()["backupId"]


# ---- the page -----------------------------------------------------------------------------

def test_the_sections_have_the_panels_health_first_and_no_inline_code(htmx):
    section = "/system/backup/section"
    page = htmx.client.get(f"{section}/health").get_data(as_text=True)
    assert '<link rel="stylesheet" href="/static/css/monitoring.css">' in page
    assert page.index('id="health"') < page.index('id="charts"')
    assert f'hx-get="{BASE}/health"' in page and 'hx-trigger="load, every 30s"' in page
    assert "No completed backups yet" in page
    activity = htmx.request("GET", f"{section}/activity").get_data(as_text=True)
    settings = htmx.request("GET", f"{section}/settings").get_data(as_text=True)
    assert 'id="activity"' in activity and "No channels yet" in settings
    for html_text in (page, activity, settings):
        assert not re.search(r"\son[a-z]+=|hx-on|javascript:|\sstyle=", html_text)
    assert htmx.request("GET", "/static/css/monitoring.css").status_code == 200


def test_fragments_need_a_login_and_changes_need_the_csrf_header(client):
    for path in ("/health", "/activity", "/charts", "/channels", "/deliveries"):
        response = client.get(BASE + path, headers=HX)
        assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    from tests.conftest import ADMIN_PASSWORD

    client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                "csrf_token": token})
    refused = client.post(BASE + "/channels", data={"kind": "webhook", "name": "x"}, headers=HX)
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)


# ---- health -------------------------------------------------------------------------------

def test_health_is_red_with_the_reason_when_the_database_is_unreachable(app, htmx):
    app.config["DATABASE_URL"] = f"postgresql://backup:s3cret-pw@127.0.0.1:{free_port()}/shop"
    started = time.monotonic()
    panel = get(htmx, "/health")
    assert time.monotonic() - started < 3
    assert 'class="health-body health-critical"' in panel
    assert "System health: <span class=\"health-status\">Critical problem</span>" in panel
    assert 'hx-trigger="every 30s, backups-changed from:body"' in panel
    problem = re.search(r'<li class="issue issue-error" data-check="database">(.*?)</li>',
                        panel, flags=re.S).group(1)
    assert "Protected database" in problem
    assert "cannot connect to the protected database" in problem
    assert '<span class="health-hint">check that PostgreSQL runs' in problem
    assert "s3cret-pw" not in panel
    # Every check, out of band into the <details>, which keeps its open state.
    checks = re.search(r'<ul id="health-checks" class="checks health-checks" '
                       r'hx-swap-oob="true">(.*?)</ul>', panel, flags=re.S).group(1)
    assert checks.count('<li class="check') == 10
    assert re.search(r'<span id="health-tally" class="muted" hx-swap-oob="true">'
                     r"\d+ critical · \d+ warning · 1 setup · \d+ ok</span>", panel)


def test_open_alerts_show_with_their_severity_and_since_when(app, htmx):
    from services import alerts
    from services.extensions import db
    from services.models import Alert, utcnow

    assert "None open." in get(htmx, "/health")
    with app.app_context():
        events = alerts.evaluate()  # no worker and no scheduler run here: real problems
        keys = {event.alert.key for event in events}
        assert {"health:workers", "health:scheduler"} <= keys
        db.session.add(Alert(key="old:thing", severity="warning", message="gone by now",
                             started_at=utcnow() - timedelta(days=2), cleared_at=utcnow()))
        db.session.add(Alert(key="disk:soon", severity="warning", message="<b>disk</b> filling",
                             started_at=utcnow() - timedelta(hours=3)))
        db.session.commit()
    panel = get(htmx, "/health")
    section = panel.split('<div class="health-alerts">', 1)[1]
    assert f'Open alerts <span class="count">{len(keys) + 1}</span>' in section
    items = re.findall(r'<li class="open-alert open-alert-(\w+)">(.*?)</li>', section, re.S)
    assert [severity for severity, _ in items] == ["critical"] * len(keys) + ["warning"]
    assert any("no worker listens on" in text for _, text in items)
    assert "&lt;b&gt;disk&lt;/b&gt; filling" in items[-1][1] and "(3 h ago)" in items[-1][1]
    assert re.search(r"since <time datetime=\"[\dT:.-]+Z\">[\d-]+ [\d:]+</time> UTC", section)
    assert "gone by now" not in panel


def test_health_turns_green_then_amber(app, api, htmx, worker, scheduler):
    app.config.update(DISK_WARNING_PERCENT=100, DISK_CRITICAL_PERCENT=100)
    backup_id = make_backup(api)

    from services.extensions import db
    from services.models import Backup

    def valid() -> bool:
        with app.app_context():
            db.session.expire_all()
            return db.session.get(Backup, backup_id).verification == "valid"

    wait_for(valid)
    green = get(htmx, "/health")
    assert 'class="health-body health-ok"' in green, re.findall(r'data-check="[^"]+"', green)
    assert "All systems OK" in green and "health-problems" not in green
    assert '<span id="health-tally" class="muted" hx-swap-oob="true">10 ok</span>' in green

    app.config["DISK_WARNING_PERCENT"] = 0.001  # any disk is fuller than that
    amber = get(htmx, "/health")
    assert 'class="health-body health-warning"' in amber and "Needs attention" in amber
    assert re.search(r'<li class="issue issue-warn" data-check="disk">.*?Disk space.*?'
                     r"% used.*?warning at 0.001%", amber, flags=re.S)
    assert "9 ok" in amber and "1 warning" in amber


# ---- activity -----------------------------------------------------------------------------

def test_activity_shows_a_login_and_a_backup_newest_first(app, client, htmx,
                                                          run_worker):
    htmx.create()
    run_worker()  # the backup, then its integrity check
    log = get(htmx, "/activity")
    rows = activity_rows(log)
    assert [row["action"] for row in rows] == [
        "backup.verified", "backup.verify", "backup.run", "backup.create", "login"]
    login, create = rows[4], rows[3]
    assert login["actor"] == "admin" and login["target"] == "admin"
    assert login["outcome"] == "ok" and login["source"] == "127.0.0.1"
    assert create["actor"] == "admin" and create["target"].startswith("backup-")
    assert rows[2]["actor"] == "worker" and rows[2]["target"] == create["target"]
    assert "Backup requested" in log and "full, origin manual" in log
    assert re.fullmatch(r'<time datetime="[\dT:.-]+Z">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</time>',
                        login["time"])
    assert 'href="/api/system/activity/export?format=csv"' in log
    assert 'href="/api/system/activity/export?format=jsonl"' in log
    exported = client.get("/api/system/activity/export?format=jsonl").get_data(as_text=True)
    assert [json.loads(line)["action"] for line in exported.splitlines()] == [
        *[row["action"] for row in reversed(rows)], "activity.export"]
    assert 'hx-trigger="every 60s, backups-changed from:body' in log


def test_activity_escapes_what_people_type(app, client, htmx):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "<img src=x onerror=alert(1)>",
                                "password": "nope", "csrf_token": token})
    log = htmx.request("GET", BASE + "/activity").get_data(as_text=True)
    assert "<img" not in log
    failed = [row for row in activity_rows(log) if row["outcome"] == "failed"]
    assert failed and failed[0]["target"] == "<img src=x onerror=alert(1)>"
    assert "&lt;img src=x onerror=alert(1)&gt;" in log


# ---- charts -------------------------------------------------------------------------------

def test_charts_are_empty_then_show_real_backups(app, api, htmx, run_worker):
    from services.formatting import filesize

    empty = get(htmx, "/charts")
    charts_now = svgs(empty)
    assert set(charts_now) == {"chart-size", "chart-duration", "chart-storage"}
    assert "No completed backups yet" in empty
    assert 'hx-trigger="backups-changed from:body"' in empty

    full = [make_backup(api) for _ in range(2)]
    schema = make_backup(api, "schema-only")
    run_worker()

    fragment = get(htmx, "/charts")
    assert "3 completed backups; times in UTC." in fragment
    charts = svgs(fragment)
    size = series_points(charts["chart-size"])
    assert [len(size["full"]), len(size["schema-only"])] == [2, 1]
    assert all(any(backup_id in tip for tip in size["full"]) for backup_id in full)
    assert schema in size["schema-only"][0]
    assert re.search(r"full · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC · \d+\.\d (KiB|MiB) · backup-",
                     size["full"][0])
    duration = series_points(charts["chart-duration"])
    assert [len(duration["full"]), len(duration["schema-only"])] == [2, 1]
    assert re.search(r" · \d+(\.\d)? (ms|s) · ", duration["full"][0])
    ticks = ["".join(t.itertext()) for t in charts["chart-size"].iter(f"{SVG_NS}text")]
    assert "full (2)" in ticks and "schema-only (1)" in ticks
    assert any(re.fullmatch(r"\d+(\.\d+)? (KiB|MiB)", tick) and not tick.startswith("0 ")
               for tick in ticks)

    from services.extensions import db
    from services.models import Backup

    with app.app_context():
        total = sum(b.size for b in db.session.query(Backup).all())
    storage = ["".join(t.itertext()) for t in charts["chart-storage"].iter(f"{SVG_NS}text")]
    assert re.fullmatch(r"(<1|>99|\d+)% used of \d+\.\d (MiB|GiB|TiB)", storage[0])
    assert storage[1].startswith(f"Backups: {filesize(total)} (")
    assert storage[2].startswith("Other files: ") and storage[3].startswith("Free: ")


def test_storage_of_a_backup_dir_not_created_yet_is_its_disk(app, htmx, tmp_path):
    app.config["BACKUP_DIR"] = str(tmp_path / "not" / "yet")
    fragment = get(htmx, "/charts")
    assert "chart-storage" in svgs(fragment)
    assert str(tmp_path / "not" / "yet") in fragment


# ---- notification channels ----------------------------------------------------------------

def add(htmx, **fields: str):
    data = {"kind": "webhook", "enabled": "on", **fields}
    return htmx.request("POST", BASE + "/channels", data=data)


def channel_id(fragment: str, name: str) -> int:
    card = re.search(r'<li class="card channel[^"]*" id="channel-(\d+)">\s*<div class="card-head">'
                     r'\s*<span class="channel-title">\s*<span class="channel-name">'
                     + re.escape(name) + "<", fragment)
    return int(card.group(1))


def test_add_a_webhook_and_send_a_test_to_a_real_receiver(app, htmx, receiver):
    from services import notifications

    response = add(htmx, name="ops", url=receiver.url(HOOK), secret=SECRET)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "channels-changed"
    panel = response.get_data(as_text=True)
    assert panel.lstrip().startswith('<section id="channels"')
    assert SECRET not in panel
    assert f'<dd class="url">{receiver.url(HOOK)}</dd>' in panel
    assert "<dt>Signing secret</dt><dd>set</dd>" in panel
    assert "<dt>Last delivery</dt><dd>none yet</dd>" in panel
    assert 'id="alerts" class="alerts" aria-live="polite" hx-swap-oob="true"' in panel
    ident = channel_id(panel, "ops")

    tested = htmx.request("POST", f"{BASE}/channels/{ident}/test")
    assert tested.status_code == 200
    assert tested.headers["HX-Trigger"] == "deliveries-changed"
    card = tested.get_data(as_text=True)
    assert card.lstrip().startswith(f'<li class="card channel" id="channel-{ident}">')
    assert "Test sent: the receiver accepted it." in card
    assert 'class="mbadge mbadge-delivery-sent">sent</span> test' in card
    assert SECRET not in card

    [sent] = receiver.received
    assert sent.path == HOOK
    assert sent.headers["X-PGBackup-Event"] == "test"
    assert sent.headers["X-PGBackup-Signature"] == notifications.signature(SECRET, sent.body)
    assert json.loads(sent.body)["alert"]["message"] == "test notification to channel ops"

    receiver.status = 500
    failed = htmx.request("POST", f"{BASE}/channels/{ident}/test").get_data(as_text=True)
    assert "Test failed: HTTP 500" in failed
    assert 'mbadge-delivery-failed">failed</span>' in failed

    deliveries = get(htmx, "/deliveries")
    rows = re.findall(r'<tr class="delivery delivery-(\w+)">(.*?)</tr>', deliveries, re.S)
    assert [status for status, _ in rows] == ["failed", "sent"]
    assert 'data-label="Attempts">1</td>' in rows[0][1]
    assert "HTTP 500" in rows[0][1] and ">ops</td>" in rows[0][1]
    assert 'hx-trigger="every 30s, deliveries-changed from:body' in deliveries

    log = activity_rows(get(htmx, "/activity"))
    assert [(row["action"], row["outcome"]) for row in log[:3]] == [
        ("channel.test", "failed"), ("channel.test", "ok"), ("channel.create", "ok")]


def test_a_receiver_that_is_down_fails_the_test_readably(htmx):
    panel = add(htmx, name="nowhere", url=f"http://127.0.0.1:{free_port()}/x").get_data(
        as_text=True)
    result = htmx.request("POST", f"{BASE}/channels/{channel_id(panel, 'nowhere')}/test")
    assert result.status_code == 200
    assert "Test failed: cannot connect:" in result.get_data(as_text=True)


def test_refusals_come_back_in_the_form_with_what_was_typed(htmx, receiver):
    bad = add(htmx, name="typed-name", url="ftp://example.com/x", secret=SECRET)
    assert bad.status_code == 400
    assert bad.headers["HX-Retarget"] == "#channel-form"
    assert bad.headers["HX-Reswap"] == "outerHTML"
    form = bad.get_data(as_text=True)
    assert form.lstrip().startswith('<form id="channel-form"')
    assert "url must be an http:// or https:// URL with a host" in form
    assert 'value="typed-name"' in form and 'value="ftp://example.com/x"' in form
    assert SECRET not in form

    assert add(htmx, name="ops", url=receiver.url(HOOK)).status_code == 200
    taken = add(htmx, name="ops", url=receiver.url(HOOK))
    assert taken.status_code == 409
    assert "a channel named 'ops' exists already" in html.unescape(taken.get_data(as_text=True))

    email = add(htmx, kind="email", name="mail", host="smtp.example.com", port="587",
                security="starttls", to="")
    assert email.status_code == 400
    message = email.get_data(as_text=True)
    assert "config.from: Field required" in message or "config.from" in message
    assert 'value="smtp.example.com"' in message and "<option value=\"email\" selected>" in message

    port = add(htmx, kind="email", name="mail", host="smtp.example.com", port="lots",
               security="starttls", to="ops@example.com", **{"from": "b@example.com"})
    assert port.status_code == 400 and "config.port" in port.get_data(as_text=True)


def test_email_and_slack_channels_never_show_their_secrets(htmx):
    hook = "https://hooks.slack.example/services/T000/B000/XXXXSECRET"
    slack = add(htmx, kind="slack", name="chat", url=hook).get_data(as_text=True)
    assert "XXXXSECRET" not in slack and "<dt>Webhook URL</dt><dd>set</dd>" in slack
    panel = add(htmx, kind="email", name="mail", host="smtp.example.com", port="465",
                security="ssl", to="ops@example.com; dba@example.com", username="bot",
                password="smtp-pw-789", **{"from": "backups@example.com"}).get_data(as_text=True)
    assert "smtp-pw-789" not in panel
    assert "smtp.example.com:465 · TLS" in panel
    assert "backups@example.com → ops@example.com, dba@example.com" in panel
    assert "bot · password set" in panel


def test_kind_fields_swap_in_with_the_chosen_kind(htmx):
    assert 'name="host"' in get(htmx, "/channels/fields?kind=email")
    slack = get(htmx, "/channels/fields?kind=slack")
    assert 'name="url"' in slack and 'name="secret"' not in slack
    assert 'name="secret"' in get(htmx, "/channels/fields?kind=nonsense")


def test_disable_enable_and_delete_a_channel(htmx, receiver):
    panel = add(htmx, name="ops", url=receiver.url(HOOK)).get_data(as_text=True)
    ident = channel_id(panel, "ops")
    disabled = htmx.request("POST", f"{BASE}/channels/{ident}/enabled").get_data(as_text=True)
    assert f'<li class="card channel channel-disabled" id="channel-{ident}">' in disabled
    assert ">Enable</button>" in disabled
    enabled = htmx.request("POST", f"{BASE}/channels/{ident}/enabled").get_data(as_text=True)
    assert f'<li class="card channel" id="channel-{ident}">' in enabled
    gone = htmx.request("DELETE", f"{BASE}/channels/{ident}")
    assert gone.status_code == 200 and "No channels yet" in gone.get_data(as_text=True)
    for unknown in (ident, 2**80):
        missing = htmx.request("POST", f"{BASE}/channels/{unknown}/test")
        assert missing.status_code == 404
        assert "no notification channel with id" in missing.get_data(as_text=True)
        assert htmx.request("DELETE", f"{BASE}/channels/{unknown}").status_code == 404
