"""The dashboard's schedules panel and retention preview, driven as htmx drives them."""

from __future__ import annotations

import html
import re
import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.support.web import HX, HtmxClient, login

BASE = "/system/backup/schedules"
SECTION = "/system/backup/section/schedules"
NIGHTLY = {"name": "nightly", "type": "full", "frequency": "daily", "time": "02:00",
           "dayOfWeek": "0", "dayOfMonth": "1", "cron": "", "timezone": "Europe/Berlin",
           "retention": "14", "keepAtLeast": "3", "verify": "integrity", "enabled": "on"}


class SchedulesClient(HtmxClient):
    def create(self, **overrides):
        return self.request("POST", BASE, data={**NIGHTLY, **overrides})


@pytest.fixture
def htmx(client) -> SchedulesClient:
    return SchedulesClient(client)


def text(response) -> str:
    """The fragment with entities decoded, as the browser shows it."""
    return html.unescape(response.get_data(as_text=True))


def catalog_schedules(app):
    from services.extensions import db
    from services.models import Schedule

    with app.app_context():
        rows = db.session.query(Schedule).order_by(Schedule.id).all()
        db.session.expunge_all()
        return rows


def only_schedule(app):
    [schedule] = catalog_schedules(app)
    return schedule


def backups_of(app, schedule_id: int):
    from services.extensions import db
    from services.models import Backup

    with app.app_context():
        return [b.id for b in db.session.query(Backup).filter_by(schedule_id=schedule_id)]


def test_the_page_has_both_panels_and_no_inline_javascript(client):
    login(client)
    page = client.get(SECTION).get_data(as_text=True)
    assert 'id="schedules"' in page and 'id="retention"' in page
    assert "No schedules yet" in page and "No backups yet, so nothing to clean up." in page
    assert '<details class="schedule-new" open>' in page  # nothing yet: the form is open
    assert '<script src="/static/js/localtime.js" defer></script>' in page
    for tag, body in re.findall(r"(<script[^>]*>)(.*?)</script>", page, re.S):
        assert 'src="/static/' in tag and body == "", tag
    assert not re.search(r"\son[a-z]+=|hx-on|javascript:", page)
    assert '<option value="Europe/Berlin">' in page  # the time zone suggestions
    for path in ("/static/js/localtime.js", "/static/css/schedules.css"):
        assert client.get(path).status_code == 200


def test_create_needs_the_csrf_header(app, client, htmx):
    refused = client.post(BASE, data=NIGHTLY, headers=HX)
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    assert catalog_schedules(app) == []


def test_create_lists_the_schedule_with_its_next_run_in_both_zones(app, htmx):
    response = htmx.create()
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "schedules-changed"
    fragment = text(response)
    assert fragment.lstrip().startswith('<ul id="schedule-list"')
    assert "<html" not in fragment
    schedule = only_schedule(app)
    assert (schedule.name, schedule.frequency, schedule.time, schedule.timezone) == (
        "nightly", "daily", "02:00", "Europe/Berlin")
    assert (schedule.retention_days, schedule.keep_at_least, schedule.enabled) == (14, 3, True)
    assert schedule.day_of_week is None and schedule.day_of_month is None  # other frequencies
    assert "daily at 02:00 Europe/Berlin" in fragment
    next_utc = schedule.next_run_at.replace(tzinfo=UTC)
    local = next_utc.astimezone(ZoneInfo("Europe/Berlin"))
    assert local.strftime("%H:%M") == "02:00"
    assert f'<span class="next-local">{local:%a %Y-%m-%d 02:00 %Z}</span>' in fragment
    assert (f'<time datetime="{next_utc:%Y-%m-%dT%H:%M:%S}.000Z" data-localtime>'
            f'{next_utc:%a %Y-%m-%d %H:%M} UTC</time>') in fragment
    assert "Last run" in fragment and "never" in fragment
    # The create form comes back empty, out of band, and old alerts go.
    assert 'id="schedule-form-new" class="sched-form" hx-swap-oob="true"' in fragment
    assert 'name="name" aria-describedby="sf-new-name-help" value=""' in fragment
    assert '<div id="alerts" class="alerts" aria-live="polite" hx-swap-oob="true">' in fragment

    page = text(htmx.request("GET", SECTION))
    assert "daily at 02:00 Europe/Berlin" in page
    assert '<details class="schedule-new">' in page  # folded once a schedule exists


@pytest.mark.parametrize(
    ("overrides", "message", "field"),
    [
        ({"time": "25:00"}, 'time: "25:00" is not a time of day (use HH:MM, 00:00-23:59)',
         "time"),
        ({"timezone": "Mars/Olympus"}, "Mars/Olympus", "timezone"),
        ({"frequency": "cron", "cron": "61 * * * *"}, "cron", "cron"),
        ({"frequency": "monthly", "dayOfMonth": "32"}, "dayOfMonth", "dayOfMonth"),
        ({"frequency": "monthly", "dayOfMonth": "first"}, 'dayOfMonth: "first" is not a whole',
         "dayOfMonth"),
        ({"retention": "0"}, "retention", "retention"),
        ({"keepAtLeast": ""}, "keepAtLeast: nothing is not a whole number", "keepAtLeast"),
        ({"name": "  "}, "name", "name"),
        ({"type": "differential"}, "type", "type"),
    ],
)
def test_a_refused_form_shows_the_message_inline_and_keeps_the_input(
        app, htmx, overrides, message, field):
    response = htmx.create(**overrides)
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#schedule-form-new"
    assert response.headers["HX-Reswap"] == "outerHTML"
    assert "HX-Trigger" not in response.headers
    fragment = text(response)
    assert '<form id="schedule-form-new"' in fragment and "<html" not in fragment
    assert re.search(r'class="alert alert-error sf-error" id="sf-new-error" role="alert">'
                     r"[^<]*" + re.escape(message), fragment), fragment
    assert re.search(rf'id="sf-new-{field}" name="{field}" aria-describedby='
                     rf'"sf-new-{field}-help sf-new-error" aria-invalid="true"', fragment)
    for name in ("name", "time", "timezone", "retention", "keepAtLeast", "cron", "dayOfMonth"):
        value = {**NIGHTLY, **overrides}[name].strip()
        assert f'name="{name}" aria-describedby="sf-new-{name}-help' in fragment
        assert re.search(rf'id="sf-new-{name}" name="{name}"[^>]*value="{re.escape(value)}"',
                         fragment), (name, value)
    assert catalog_schedules(app) == []


def test_a_taken_name_is_refused_next_to_the_name(app, htmx):
    htmx.create()
    response = htmx.create(time="04:00")
    assert response.status_code == 409
    fragment = text(response)
    assert "a schedule named 'nightly' exists already" in fragment
    assert 'id="sf-new-name" name="name" aria-describedby="sf-new-name-help sf-new-error" ' \
           'aria-invalid="true"' in fragment
    assert 'value="04:00"' in fragment
    assert len(catalog_schedules(app)) == 1


def test_edit_shows_the_form_filled_in_and_saves(app, htmx):
    htmx.create()
    schedule_id = only_schedule(app).id
    form = text(htmx.request("GET", f"{BASE}/{schedule_id}/edit"))
    assert form.lstrip().startswith(
        f'<li class="card schedule schedule-editing" id="schedule-{schedule_id}"')
    assert f'hx-put="{BASE}/{schedule_id}"' in form
    for name, value in (("name", "nightly"), ("time", "02:00"), ("timezone", "Europe/Berlin"),
                        ("retention", "14"), ("keepAtLeast", "3")):
        assert re.search(rf'name="{name}"[^>]*value="{value}"', form), name
    assert '<option value="daily" selected>' in form
    assert '<option value="integrity" selected>' in form
    assert re.search(r'name="enabled" value="on" checked', form)

    saved = htmx.request("PUT", f"{BASE}/{schedule_id}", data={
        **NIGHTLY, "frequency": "weekly", "dayOfWeek": "2", "time": "03:30", "retention": "30"})
    assert saved.status_code == 200 and saved.headers["HX-Trigger"] == "schedules-changed"
    card = text(saved)
    assert card.lstrip().startswith(f'<li class="card schedule" id="schedule-{schedule_id}"')
    assert "weekly on Wednesday at 03:30 Europe/Berlin" in card
    assert "30 days, at least 3" in card
    schedule = only_schedule(app)
    assert (schedule.frequency, schedule.day_of_week, schedule.time, schedule.retention_days) \
        == ("weekly", 2, "03:30", 30)
    assert schedule.next_run_at.replace(tzinfo=UTC).astimezone(
        ZoneInfo("Europe/Berlin")).weekday() == 2

    # Back to daily: the day of week goes without clearing it by hand.
    htmx.request("PUT", f"{BASE}/{schedule_id}", data={**NIGHTLY, "dayOfWeek": "2"})
    assert only_schedule(app).day_of_week is None

    cancel = text(htmx.request("GET", f"{BASE}/{schedule_id}"))
    assert "daily at 02:00 Europe/Berlin" in cancel and "sched-form" not in cancel


def test_a_refused_edit_keeps_the_input_and_changes_nothing(app, htmx):
    htmx.create()
    before = only_schedule(app)
    response = htmx.request("PUT", f"{BASE}/{before.id}", data={
        **NIGHTLY, "name": "renamed", "time": "24:60"})
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == f"#schedule-{before.id}"
    fragment = text(response)
    assert 'time: "24:60" is not a time of day' in fragment
    assert "schedule-editing" in fragment
    assert re.search(r'name="name"[^>]*value="renamed"', fragment)
    assert re.search(r'name="time"[^>]*value="24:60"', fragment)
    after = only_schedule(app)
    assert (after.name, after.time, after.next_run_at) == ("nightly", "02:00", before.next_run_at)


def test_the_switch_disables_and_enables(app, htmx):
    htmx.create()
    schedule_id = only_schedule(app).id
    card = text(htmx.request("GET", f"{BASE}/{schedule_id}"))
    assert re.search(r'role="switch" checked\s+hx-put="[^"]+/enabled"\s+'
                     r"hx-vals='\{\"enabled\": \"false\"\}'", card)

    off = htmx.request("PUT", f"{BASE}/{schedule_id}/enabled", data={"enabled": "false"})
    assert off.status_code == 200 and off.headers["HX-Trigger"] == "schedules-changed"
    card = text(off)
    assert 'class="card schedule schedule-off"' in card
    assert '<span class="tag tag-off">disabled</span>' in card
    assert "none while disabled" in card
    assert "hx-vals='{\"enabled\": \"true\"}'" in card and 'role="switch" checked' not in card
    schedule = only_schedule(app)
    assert schedule.enabled is False and schedule.next_run_at is None

    on = text(htmx.request("PUT", f"{BASE}/{schedule_id}/enabled", data={"enabled": "true"}))
    assert "schedule-off" not in on and 'role="switch" checked' in on
    assert only_schedule(app).next_run_at is not None

    bad = htmx.request("PUT", f"{BASE}/{schedule_id}/enabled", data={"enabled": "maybe"})
    assert bad.status_code == 400 and bad.headers["HX-Retarget"] == f"#schedule-{schedule_id}"
    assert "enabled: 'maybe' is neither true nor false" in text(bad)


def test_run_now_starts_a_backup_then_skips_while_it_runs(app, htmx, run_worker):
    htmx.create()
    schedule_id = only_schedule(app).id
    started = htmx.request("POST", f"{BASE}/{schedule_id}/run")
    assert started.status_code == 200
    assert started.headers["HX-Trigger"] == "backups-changed"  # the list and the preview
    [backup_id] = backups_of(app, schedule_id)
    card = text(started)
    assert f'Run now started <span class="filename">{backup_id}</span>' in card
    assert 'class="last-run just-ran"' in card
    assert '<span class="badge badge-queued">queued</span>' in card
    assert f'hx-get="{BASE}/{schedule_id}/last-run"' in card  # polls while it runs
    assert 'hx-trigger="every 2s"' in card

    skipped = text(htmx.request("POST", f"{BASE}/{schedule_id}/run"))
    assert f"Run now skipped: the previous run ({backup_id}) is still queued" in skipped
    assert '<span class="badge badge-skipped">skipped</span>' in skipped
    assert 'hx-trigger="every 2s"' in skipped  # its backup is still queued
    assert backups_of(app, schedule_id) == [backup_id]

    assert "HX-Trigger" not in htmx.request("GET", f"{BASE}/{schedule_id}/last-run").headers
    run_worker()
    done = htmx.request("GET", f"{BASE}/{schedule_id}/last-run")
    assert done.headers["HX-Trigger"] == "backups-changed"  # the preview reloads
    block = text(done)
    assert '<span class="badge badge-completed">completed</span>' in block
    assert "hx-trigger" not in block  # done: no more polling
    # lastStatus is the backup's again, so the block names it, not the skip.
    assert f'<span class="last-run-outcome">started <span class="filename">{backup_id}' in block

    again = text(htmx.request("POST", f"{BASE}/{schedule_id}/run"))
    [newest] = [b for b in backups_of(app, schedule_id) if b != backup_id]
    assert f'Run now started <span class="filename">{newest}</span>' in again
    backups = text(htmx.request("GET", "/system/backup/list"))
    assert backup_id in backups and newest in backups


def test_run_now_with_redis_down_says_so_in_the_card(app, htmx):
    htmx.create()
    schedule_id = only_schedule(app).id
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("redis", None)
    response = htmx.request("POST", f"{BASE}/{schedule_id}/run")
    assert response.status_code == 503
    assert response.headers["HX-Retarget"] == f"#schedule-{schedule_id}"
    card = text(response)
    assert 'class="alert alert-error" role="alert"' in card and "Redis" in card
    assert "never" in card  # nothing was recorded
    assert backups_of(app, schedule_id) == []


def test_delete_removes_the_schedule_and_keeps_its_backups(app, htmx):
    htmx.create()
    htmx.create(name="weekly", frequency="weekly", dayOfWeek="6")
    nightly, weekly = catalog_schedules(app)
    htmx.request("POST", f"{BASE}/{nightly.id}/run")
    [backup_id] = backups_of(app, nightly.id)
    page = text(htmx.request("GET", SECTION))
    assert f'hx-delete="{BASE}/{nightly.id}"' in page
    assert "hx-confirm=\"Delete the schedule nightly? Its backups stay until you delete them.\"" \
        in page

    response = htmx.request("DELETE", f"{BASE}/{nightly.id}")
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "schedules-changed"
    fragment = text(response)
    assert fragment.lstrip().startswith('<ul id="schedule-list"')
    assert "nightly" not in fragment and "weekly on Sunday at 02:00 Europe/Berlin" in fragment
    assert [s.name for s in catalog_schedules(app)] == ["weekly"]
    from services.extensions import db
    from services.models import Backup

    with app.app_context():
        assert db.session.get(Backup, backup_id) is not None

    missing = htmx.request("DELETE", f"{BASE}/{nightly.id}")
    assert missing.status_code == 404 and "no schedule with id" in text(missing)
    gone = htmx.request("GET", f"{BASE}/{nightly.id}/last-run")  # a poll from another tab
    assert gone.status_code == 200 and gone.get_data(as_text=True) == ""
    htmx.request("DELETE", f"{BASE}/{weekly.id}")
    assert "No schedules yet" in text(htmx.request("GET", BASE))


def test_retention_preview_shows_deletions_first_with_their_reasons(app, htmx, run_worker):
    from services.extensions import db
    from services.models import Backup

    empty = text(htmx.request("GET", f"{BASE}/retention"))
    assert "No backups yet, so nothing to clean up." in empty
    assert 'hx-trigger="schedules-changed from:body, backups-changed from:body"' in empty

    htmx.create(retention="7", keepAtLeast="1")
    schedule_id = only_schedule(app).id
    for _ in range(2):
        htmx.request("POST", f"{BASE}/{schedule_id}/run")
        run_worker()
    htmx.request("POST", "/system/backup", data={"type": "full", "compress": "on"})
    run_worker()
    old, new = backups_of(app, schedule_id)
    with app.app_context():  # time travel: the older scheduled backup is 10 days old
        db.session.get(Backup, old).created_at -= timedelta(days=10)
        db.session.commit()
        manual = db.session.query(Backup).filter_by(origin="manual").one().id

    preview = text(htmx.request("GET", f"{BASE}/retention"))
    assert "The next clean-up would delete <b>1</b> of 3 backups:" in preview
    doomed, kept = preview.split('<details class="more retention-kept">')
    assert old in doomed and new not in doomed and manual not in doomed
    assert re.search(r"expired: 10 days old, retention 7 days", doomed)
    assert '<span class="tag">nightly</span>' in doomed
    assert "2 kept, and why" in kept
    assert new in kept and "kept: within retention" in kept
    assert manual in kept and "kept: manual backup, deleted only by hand" in kept
    assert kept.index(manual) < kept.index(new)  # newest first
    with app.app_context():
        assert db.session.get(Backup, old) is not None  # the preview deleted nothing

    # Raising the schedule's retention saves the old backup.
    edited = htmx.request("PUT", f"{BASE}/{schedule_id}", data={**NIGHTLY, "retention": "30"})
    assert "schedules-changed" in edited.headers["HX-Trigger"]
    preview = text(htmx.request("GET", f"{BASE}/retention"))
    assert "would delete nothing: all 3 backups stay" in preview


def test_every_schedule_route_needs_a_login(client):
    for method, path in (("GET", BASE), ("GET", f"{BASE}/1"), ("GET", f"{BASE}/1/edit"),
                         ("GET", f"{BASE}/1/last-run"), ("GET", f"{BASE}/retention")):
        response = client.open(path, method=method)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    for method, path in (("POST", BASE), ("PUT", f"{BASE}/1"), ("PUT", f"{BASE}/1/enabled"),
                         ("DELETE", f"{BASE}/1"), ("POST", f"{BASE}/1/run")):
        assert client.open(path, method=method, headers=HX).status_code in (400, 401)


def test_next_run_texts_follow_daylight_saving(app, htmx):
    """The zone's abbreviation comes from the slot itself: CEST in summer, CET in winter."""
    from blueprints.dashboard.schedules import _zone_text

    summer = datetime(2026, 7, 1, 0, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    winter = datetime(2026, 12, 1, 1, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    assert _zone_text(summer.isoformat(), "Europe/Berlin") == "Wed 2026-07-01 02:00 CEST"
    assert _zone_text(winter.isoformat(), "Europe/Berlin") == "Tue 2026-12-01 02:00 CET"
    assert _zone_text(None, "UTC") is None


def test_presets_fill_the_form_with_the_guide_s_defaults(app, htmx, pg_server, pagila):
    full = text(htmx.request("GET", f"{BASE}/new/nightly-full"))
    assert 'value="nightly full"' in full and 'value="30"' in full
    assert "sf-capture" not in full  # a full needs no capture
    role = f"nocapture_{secrets.token_hex(4)}"
    with pg_server.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:  # the protected database reached by a role without REPLICATION
        app.config["DATABASE_URL"] = pagila.replace("postgres@", f"{role}@", 1)
        hourly = text(htmx.request("GET", f"{BASE}/new/hourly-incremental"))
    finally:
        with pg_server.connect() as conn:
            conn.execute(f"DROP ROLE {role}")
    assert 'value="hourly incremental"' in hourly and 'value="7"' in hourly
    assert '<option value="incremental" selected>' in hourly
    assert ("Until change capture can run, each incremental starts a new chain with a full "
            "backup.") in hourly
    assert f"ALTER ROLE {role} REPLICATION" in hourly
