"""Roles: a (role, route, method) table from the URL map, each cell asserted."""

from __future__ import annotations

import pytest

from tests.support.auth import PUBLIC, every_route, token_for

# Who may call what. Written out by hand on purpose: a route added to the app without a
# line here fails test_every_route_has_a_decision.
VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
EXPECTED = {
    "auth.logout": VIEWER,
    "dashboard.account.page": VIEWER, "dashboard.account.change_password": VIEWER,
    "dashboard.account.totp_setup": VIEWER,
    "dashboard.account.totp_confirm": VIEWER, "dashboard.account.totp_disable": VIEWER,
    "api.list_backups": VIEWER, "api.show_backup": VIEWER, "api.job_status": VIEWER,
    "api.list_jobs": VIEWER,
    "api.openapi": VIEWER, "api.list_restores": VIEWER, "api.show_restore": VIEWER,
    "api.create_backup": OPERATOR, "api.verify_backup": OPERATOR,
    "api.restore_backup": OPERATOR,
    "api.delete_backup": ADMIN, "api.download_backup": ADMIN, "api.list_activity": ADMIN,
    "api.retry_copy": ADMIN,
    "api.export_activity": ADMIN,
    "api.system_health": VIEWER, "metrics.scrape": VIEWER,
    "api.list_schedules": VIEWER, "api.show_schedule": VIEWER,
    "api.retention_preview": VIEWER, "api.run_schedule": OPERATOR,
    "api.create_schedule": ADMIN, "api.update_schedule": ADMIN,
    "api.delete_schedule": ADMIN,
    "api.list_alerts": VIEWER,
    "api.list_channels": ADMIN, "api.create_channel": ADMIN,
    "api.update_channel": ADMIN, "api.delete_channel": ADMIN,
    "api.test_channel": ADMIN, "api.list_deliveries": ADMIN,
    "api.list_destinations": ADMIN, "api.create_destination": ADMIN,
    "api.show_destination": ADMIN, "api.update_destination": ADMIN,
    "api.delete_destination": ADMIN, "api.test_destination": ADMIN,
    "api.rescan_destinations": ADMIN,
    "dashboard.schedules.preset_form": ADMIN,
    "dashboard.destinations.panel": ADMIN, "dashboard.destinations.probe": ADMIN,
    "dashboard.destinations.start_rescan": ADMIN,
    "dashboard.destinations.rescan_status": ADMIN, "dashboard.retry_copy": ADMIN,
    "dashboard.root": VIEWER, "dashboard.index": VIEWER, "dashboard.backups": VIEWER,
    "dashboard.status": VIEWER, "dashboard.section.schedules": VIEWER,
    "dashboard.section.restores": VIEWER, "dashboard.section.health": VIEWER,
    "dashboard.section.activity": ADMIN, "dashboard.section.settings": ADMIN,
    "dashboard.progress": VIEWER, "dashboard.verification": VIEWER,
    "dashboard.restores_list": VIEWER, "dashboard.restore_progress": VIEWER,
    "dashboard.backup_detail": VIEWER, "dashboard.restore_state": VIEWER,
    "dashboard.restore_panel_closed": VIEWER,
    "dashboard.chains.panel": VIEWER, "dashboard.chains.dry_run": OPERATOR,
    "dashboard.create": OPERATOR, "dashboard.verify": OPERATOR,
    "dashboard.restore_panel": OPERATOR, "dashboard.restore": OPERATOR,
    "dashboard.delete": ADMIN,
    "dashboard.schedules.schedule_list": VIEWER, "dashboard.schedules.card": VIEWER,
    "dashboard.schedules.last_run": VIEWER, "dashboard.schedules.retention_preview": VIEWER,
    "dashboard.schedules.run": OPERATOR,
    "dashboard.schedules.create": ADMIN, "dashboard.schedules.edit": ADMIN,
    "dashboard.schedules.update": ADMIN, "dashboard.schedules.set_enabled": ADMIN,
    "dashboard.schedules.delete": ADMIN,
    "dashboard.monitoring.health_panel": VIEWER, "dashboard.monitoring.charts_panel": VIEWER,
    "dashboard.monitoring.activity_log": ADMIN, "dashboard.monitoring.channels_panel": ADMIN,
    "dashboard.monitoring.channel_fields": ADMIN, "dashboard.monitoring.add_channel": ADMIN,
    "dashboard.monitoring.delete_channel": ADMIN, "dashboard.monitoring.test_channel": ADMIN,
    "dashboard.monitoring.toggle_channel": ADMIN, "dashboard.monitoring.deliveries": ADMIN,
    "dashboard.users.index": ADMIN, "dashboard.users.tokens_panel": ADMIN,
    "dashboard.users.create_user": ADMIN, "dashboard.users.set_role": ADMIN,
    "dashboard.users.reset_password": ADMIN, "dashboard.users.unlock": ADMIN,
    "dashboard.users.end_sessions": ADMIN, "dashboard.users.reset_totp": ADMIN,
    "dashboard.users.delete_user": ADMIN, "dashboard.users.create_token": ADMIN,
    "dashboard.users.revoke_token": ADMIN,
}
RANK = {VIEWER: 0, OPERATOR: 1, ADMIN: 2}


def test_every_route_has_a_decision(app):
    endpoints = {endpoint for endpoint, _, _ in every_route(app)} - PUBLIC
    assert endpoints == set(EXPECTED)


@pytest.mark.parametrize("role", [VIEWER, OPERATOR, ADMIN])
def test_each_role_gets_exactly_its_routes(app, client, role):
    headers = {"Authorization": f"Bearer {token_for(app, role)}"}
    table = []
    for endpoint, method, path in every_route(app):
        if endpoint in PUBLIC or endpoint == "auth.logout":
            continue
        status = client.open(path, method=method, headers=headers, json={}).status_code
        table.append((endpoint, method, status))
        allowed = RANK[role] >= RANK[EXPECTED[endpoint]]
        assert (status == 403) != allowed, (role, endpoint, method, status)
    assert len(table) > 50


def test_an_operator_may_restore_into_a_new_database_but_not_over_the_live_one(
    app, client, api, run_worker
):
    backup_id = api.post("/api/system/backup", json={"type": "full"}).get_json()["backupId"]
    run_worker()
    headers = {"Authorization": f"Bearer {token_for(app, OPERATOR)}"}
    over = client.post("/api/system/backup/restore", headers=headers,
                       json={"backupId": backup_id, "confirmDataLoss": True})
    assert over.status_code == 403
    assert "admin" in over.get_json()["error"]["message"]
    dry = client.post("/api/system/backup/restore", headers=headers,
                      json={"backupId": backup_id, "dryRun": True})
    assert dry.status_code == 200
    refused = client.delete(f"/api/system/backup/{backup_id}", headers=headers)
    assert refused.status_code == 403
    assert client.get(f"/api/system/backup/{backup_id}", headers=headers).status_code == 200

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


def test_the_dashboard_shows_each_role_only_what_it_may_do(app, api, run_worker):
    """The server refuses anyway (above); the page does not offer what would be refused."""
    from tests.conftest import ADMIN_PASSWORD
    from tests.support.web import login

    api.post("/api/system/backup", json={"type": "full"})
    run_worker()
    runner = app.test_cli_runner()
    for role in (VIEWER, OPERATOR):
        result = runner.invoke(args=["users", "create", "--username", role, "--role", role,
                                     "--password-stdin"], input="a long password\n")
        assert result.exit_code == 0, result.output
    pages = {}
    for role in (VIEWER, OPERATOR, ADMIN):
        client = app.test_client()
        password = ADMIN_PASSWORD if role == ADMIN else "a long password"
        assert login(client, password=password, username=role).status_code == 302, role
        pages[role] = "".join(  # every section; a refused one is a 403 page
            client.get(path).get_data(as_text=True) for path in (
                "/system/backup", *(f"/system/backup/section/{name}" for name in (
                    "schedules", "restores", "health", "activity", "settings"))))
    assert "Create backup" not in pages[VIEWER] and "Create backup" in pages[OPERATOR]
    assert ">Verify</button>" not in pages[VIEWER] and ">Verify</button>" in pages[OPERATOR]
    assert ">Delete</button>" not in pages[OPERATOR] and ">Delete</button>" in pages[ADMIN]
    assert ">Restore…</button>" in pages[OPERATOR]
    assert ">Restore…</button>" not in pages[VIEWER]
    assert "New schedule" in pages[ADMIN] and "New schedule" not in pages[OPERATOR]
    for role in (VIEWER, OPERATOR):
        assert "Add a channel" not in pages[role] and "Export CSV" not in pages[role]
    assert "Add a channel" in pages[ADMIN] and "Export CSV" in pages[ADMIN]
