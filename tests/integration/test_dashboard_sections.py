"""The dashboard's sections (blueprints/dashboard/page.py): each its own URL, a whole page
for a direct load or htmx's history restore, the section alone for htmx's navigation; the
navigation lists what the role may open and the server refuses the rest."""

from __future__ import annotations

import re

import pytest

from tests.support.web import HX, HtmxClient

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data

SECTIONS = {
    "backups": ("/system/backup", 'id="backups"'),
    "schedules": ("/system/backup/section/schedules", 'id="schedules"'),
    "restores": ("/system/backup/section/restores", 'id="restores"'),
    "health": ("/system/backup/section/health", 'id="health"'),
    "activity": ("/system/backup/section/activity", 'id="activity"'),
    "settings": ("/system/backup/section/settings", 'id="users"'),
}
ADMIN_ONLY = ("activity", "settings")
NAV = re.compile(r'<nav id="section-nav".*?</nav>', re.S)
CURRENT = re.compile(r'<a href="([^"]+)"[^>]*aria-current="page"')


def nav_links(html: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', NAV.search(html).group(0))


def operator_and_viewer(app) -> dict[str, HtmxClient]:
    from services import accounts

    with app.app_context():
        for role in ("operator", "viewer"):
            accounts.create_user(role, role, "a long enough password")
    return {role: HtmxClient(app.test_client(), role, "a long enough password")
            for role in ("operator", "viewer")}


@pytest.mark.parametrize("name", SECTIONS)
def test_a_direct_load_is_the_whole_page_with_the_section(htmx, name):
    path, marker = SECTIONS[name]
    response = htmx.client.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.startswith("<!doctype html>") and marker in html
    assert f"<title>{name.capitalize()} · PG Backup Manager</title>" in html
    assert nav_links(html) == [path for path, _ in SECTIONS.values()]
    assert CURRENT.findall(html) == [path]
    assert 'id="status-strip"' in html and '<main id="main" class="container">' in html
    assert set(response.vary) >= {"HX-Request", "HX-History-Restore-Request"}
    for other, (_, other_marker) in SECTIONS.items():
        if other != name:
            assert other_marker not in html, other


@pytest.mark.parametrize("name", SECTIONS)
def test_htmx_gets_the_section_alone_with_the_navigation_out_of_band(htmx, name):
    path, marker = SECTIONS[name]
    response = htmx.request("GET", path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html and "<body" not in html and 'id="status-strip"' not in html
    assert marker in html and 'id="alerts"' in html
    assert html.lstrip().startswith(f"<title>{name.capitalize()} · PG Backup Manager</title>")
    assert '<nav id="section-nav" class="section-nav" aria-label="Sections" ' \
           'hx-swap-oob="true">' in html
    assert CURRENT.findall(html) == [path]
    assert ('id="restore-panel"' in html) == (name == "backups")


def test_a_history_restore_gets_the_whole_page(htmx):
    response = htmx.client.get("/system/backup/section/schedules",
                               headers={**HX, "HX-History-Restore-Request": "true"})
    html = response.get_data(as_text=True)
    assert html.startswith("<!doctype html>") and 'id="schedules"' in html


def test_the_nav_links_work_without_javascript_and_with_htmx(htmx):
    html = htmx.client.get("/system/backup").get_data(as_text=True)
    nav = NAV.search(html).group(0)
    for path, _ in SECTIONS.values():
        assert f'<a href="{path}" hx-get="{path}" hx-target="#main"' in nav
    assert nav.count('hx-push-url="true"') == len(SECTIONS)


def test_a_viewer_sees_no_admin_section_and_is_refused_them(app, htmx):
    clients = operator_and_viewer(app)
    for role, client in clients.items():
        page = client.client.get("/system/backup").get_data(as_text=True)
        allowed = [path for name, (path, _) in SECTIONS.items() if name not in ADMIN_ONLY]
        assert nav_links(page) == allowed, role
        for name in ADMIN_ONLY:
            path, marker = SECTIONS[name]
            refused = client.client.get(path)
            assert refused.status_code == 403, (role, name)
            assert "may not do this" in refused.get_data(as_text=True)
            fragment = client.request("GET", path)
            assert fragment.status_code == 403 and marker not in fragment.get_data(as_text=True)
        for name in ("schedules", "restores", "health"):
            assert client.client.get(SECTIONS[name][0]).status_code == 200, (role, name)


def test_an_unknown_section_is_a_404(htmx):
    assert htmx.client.get("/system/backup/section/nowhere").status_code == 404
    assert htmx.client.get("/system/backup/section/backups").status_code == 404


def test_the_status_strip_says_how_the_system_is_and_what_runs(app, htmx):
    response = htmx.request("GET", "/system/backup/status")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert re.search(r'class="status-health status-(ok|setup|warning|critical)"', html)
    assert 'href="/system/backup/section/health"' in html
    assert "No job in progress" in html

    htmx.create()  # queued: no worker runs here
    assert "1 job in progress" in htmx.request("GET", "/system/backup/status").get_data(
        as_text=True)


def test_the_status_strip_needs_a_login(client):
    response = client.get("/system/backup/status", headers=HX)
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")
