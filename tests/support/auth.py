"""Who may call what: every route of the app with sample values, and bearer tokens by role."""

from __future__ import annotations

from services.extensions import db
from services.models import ApiToken

PUBLIC = {"auth.login", "auth.login_totp", "static", "healthz"}
SAMPLE_VALUES = {"backup_id": "backup-2024-01-15T10-30-00-000Z", "job_id": "somejob",
                 "schedule_id": 1, "channel_id": 1, "user_id": 1, "token_id": 1,
                 "destination_id": 1,
                 "restore_id": "restore-2024-01-15T10-30-00-000Z", "filename": "htmx.min.js"}


def every_route(app):
    for rule in app.url_map.iter_rules():
        values = {arg: SAMPLE_VALUES.get(arg, "x") for arg in rule.arguments}
        path = rule.build(values)[1] if rule.arguments else rule.rule
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path


def token_for(app, role: str) -> str:
    with app.app_context():
        row, token = ApiToken.mint(f"{role}-token", role)
        db.session.add(row)
        db.session.commit()
    return token
