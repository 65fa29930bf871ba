"""Who may do what, decided per endpoint.

- admin: everything.
- operator: what viewers may, plus create and verify backups, run schedules, dry-run
  restores and restore into a new database. Never a restore over the protected database,
  a deletion, a download of a whole database, or a change of settings.
- viewer: read-only pages and API, without the activity log or notification settings.

An endpoint missing from MINIMUM_ROLE needs admin, so a new route is closed until someone
decides; tests/test_roles.py fails until the table covers every route.
"""

from __future__ import annotations

ADMIN, OPERATOR, VIEWER = "admin", "operator", "viewer"
ROLES = (ADMIN, OPERATOR, VIEWER)
_RANK = {VIEWER: 0, OPERATOR: 1, ADMIN: 2}

_VIEWER_ENDPOINTS = (
    "auth.logout", "api.list_backups", "api.show_backup", "api.job_status", "api.list_jobs",
    "api.openapi",
    "api.list_restores", "api.show_restore", "api.system_health", "metrics.scrape",
    "api.list_schedules", "api.show_schedule", "api.retention_preview", "api.list_alerts",
    "dashboard.root", "dashboard.index", "dashboard.backups", "dashboard.backup_detail",
    "dashboard.progress", "dashboard.restore_state",
    "dashboard.verification", "dashboard.restores_list", "dashboard.restore_progress",
    "dashboard.restore_panel_closed", "dashboard.schedules.schedule_list",
    "dashboard.schedules.card", "dashboard.schedules.last_run",
    "dashboard.schedules.retention_preview", "dashboard.monitoring.health_panel",
    "dashboard.monitoring.charts_panel", "dashboard.account.page",
    "dashboard.account.change_password", "dashboard.account.totp_setup",
    "dashboard.account.totp_confirm", "dashboard.account.totp_disable",
    "dashboard.chains.panel", "dashboard.status", "dashboard.section.schedules",
    "dashboard.section.restores", "dashboard.section.health",
)
_OPERATOR_ENDPOINTS = (
    "api.create_backup", "api.verify_backup", "api.restore_backup",
    "api.run_schedule", "dashboard.create", "dashboard.verify",
    "dashboard.restore_panel", "dashboard.restore", "dashboard.schedules.run",
    "dashboard.chains.dry_run",
)
MINIMUM_ROLE = {
    **dict.fromkeys(_VIEWER_ENDPOINTS, VIEWER),
    **dict.fromkeys(_OPERATOR_ENDPOINTS, OPERATOR),
}


def allows(role: str, endpoint: str | None) -> bool:
    """Whether ``role`` may call ``endpoint`` (unknown roles may call nothing)."""
    if role not in _RANK:
        return False
    return _RANK[role] >= _RANK[MINIMUM_ROLE.get(endpoint or "", ADMIN)]


def at_least(role: str, minimum: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[minimum]
