"""A request's activity event when its action records none: the action's name for each
state-changing endpoint, and the outcome an HTTP status means.

Used for a token's call that ends without an event of its own (refused by a service, in
conflict, invalid, a probe) and for role refusals, so that such an event reads like the
action's own (``backup.create``, ``conflict``) and is found by the same kind filter.
"""

from __future__ import annotations

from flask import Response, request

from services import activity

ENDPOINT_ACTIONS = {
    "auth.login": "login", "auth.login_totp": "login", "auth.logout": "logout",
    # API
    "api.create_backup": "backup.create", "api.delete_backup": "backup.delete",
    "api.retry_copy": "backup.copy.retry", "api.verify_backup": "backup.verify",
    "api.restore_backup": "restore.start",
    "api.create_schedule": "schedule.create", "api.update_schedule": "schedule.update",
    "api.delete_schedule": "schedule.delete", "api.run_schedule": "schedule.run",
    "api.create_destination": "destination.create",
    "api.update_destination": "destination.update",
    "api.delete_destination": "destination.delete", "api.test_destination": "destination.test",
    "api.rescan_destinations": "destinations.rescan.start",
    "api.create_channel": "channel.create", "api.update_channel": "channel.update",
    "api.delete_channel": "channel.delete", "api.test_channel": "channel.test",
    # Dashboard
    "dashboard.create": "backup.create", "dashboard.delete": "backup.delete",
    "dashboard.retry_copy": "backup.copy.retry", "dashboard.verify": "backup.verify",
    "dashboard.restore": "restore.start",
    "dashboard.schedules.create": "schedule.create",
    "dashboard.schedules.update": "schedule.update",
    "dashboard.schedules.set_enabled": "schedule.update",
    "dashboard.schedules.delete": "schedule.delete", "dashboard.schedules.run": "schedule.run",
    "dashboard.monitoring.add_channel": "channel.create",
    "dashboard.monitoring.test_channel": "channel.test",
    "dashboard.monitoring.toggle_channel": "channel.update",
    "dashboard.monitoring.delete_channel": "channel.delete",
    "dashboard.users.create_user": "user.create", "dashboard.users.set_role": "user.role",
    "dashboard.users.reset_password": "user.password", "dashboard.users.unlock": "user.unlock",
    "dashboard.users.end_sessions": "user.sessions", "dashboard.users.reset_totp": "user.totp",
    "dashboard.users.delete_user": "user.delete", "dashboard.users.create_token": "token.create",
    "dashboard.users.revoke_token": "token.revoke",
    "dashboard.account.change_password": "user.password",
    "dashboard.account.totp_setup": "user.totp", "dashboard.account.totp_confirm": "user.totp",
    "dashboard.account.totp_disable": "user.totp",
    "dashboard.destinations.probe": "destination.test",
    "dashboard.destinations.start_rescan": "destinations.rescan.start",
}


def action_of(endpoint: str | None) -> str:
    """The action ``endpoint`` performs; the endpoint's own name when it is not listed."""
    return ENDPOINT_ACTIONS.get(endpoint or "", endpoint or "request")


def outcome_of(status: int) -> str:
    """The activity outcome of a request that ended with HTTP ``status``."""
    if status < 400:
        return "ok"
    if status in (401, 403, 429):
        return "refused"
    if status in (409, 423):
        return "conflict"
    return "invalid" if status < 500 else "failed"


def record_call(response: Response) -> None:
    """Record the current request as its action's event: ``POST -> 409 busy`` (the API's
    error code, never its message, which may quote what the client sent)."""
    status = response.status_code
    body = response.get_json(silent=True) if response.is_json else None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    detail = f"{request.method} -> {status}" + (f" {code}" if isinstance(code, str) else "")
    activity.record_call(action_of(request.endpoint), outcome_of(status), request.path,
                         activity.printable(detail))
