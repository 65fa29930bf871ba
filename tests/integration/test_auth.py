"""Everything is behind authentication: walk the URL map, then tokens and CSRF."""

from __future__ import annotations

import pytest

from tests.support.auth import PUBLIC, every_route
from tests.support.web import login

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


def test_every_route_refuses_anonymous_requests(app, client):
    checked = 0
    for endpoint, method, path in every_route(app):
        if endpoint in PUBLIC:
            continue
        response = client.open(path, method=method)
        if path.startswith("/api/") or path == "/metrics":
            assert response.status_code == 401, (method, path)
            assert response.get_json()["error"]["code"] == "unauthorized"
        elif method == "GET":
            assert response.status_code == 302, (method, path)
            assert "/login" in response.headers["Location"]
        else:  # state-changing dashboard requests fail CSRF before anything else
            assert response.status_code in (400, 401, 302), (method, path)
        checked += 1
    assert checked >= 8


def test_public_endpoints_reveal_nothing(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/login").status_code == 200


def test_login_with_the_right_password_only(client):
    assert login(client, password="wrong").status_code == 401
    assert client.get("/api/system/backup").status_code == 401
    response = login(client)
    assert response.status_code == 302
    assert client.get("/api/system/backup").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/x", "//evil.example", "javascript:x"])
def test_login_never_redirects_off_site(client, target):
    response = login(client, next_url=f"?next={target}")
    assert response.headers["Location"] == "/system/backup"


def test_session_requests_need_the_csrf_token(client):
    login(client)
    refused = client.post("/api/system/backup", json={"type": "full"})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "csrf_failed"


def test_bad_and_revoked_tokens_are_refused(app, client, api_token):
    headers = {"Authorization": f"Bearer {api_token}"}
    assert client.get("/api/system/backup", headers=headers).status_code == 200
    bad = {"Authorization": "Bearer pbm_not-a-token"}
    assert client.get("/api/system/backup", headers=bad).status_code == 401
    result = app.test_cli_runner().invoke(args=["tokens", "revoke", "tests"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/system/backup", headers=headers).status_code == 401


def test_cli_token_is_the_last_line_and_works(app, client):
    result = app.test_cli_runner().invoke(args=["tokens", "create", "--name", "cron"])
    assert result.exit_code == 0, result.output
    assert "'cron' (viewer) created" in result.output  # least privilege by default
    token = result.output.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/system/backup", headers=headers).status_code == 200
    listing = app.test_cli_runner().invoke(args=["tokens", "list"]).output
    assert "cron" in listing and token not in listing
    from services.extensions import db
    from services.models import ApiToken
    with app.app_context():
        stored = db.session.query(ApiToken).filter_by(name="cron").one()
        assert stored.token_hash != token and token not in stored.token_hash
        assert stored.role == "viewer" and stored.expires_at is not None  # 90 days
        assert 89 <= (stored.expires_at - stored.created_at).days <= 90
        assert stored.last_used_at is not None


def test_create_admin_reads_the_password_from_stdin(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "--username", "ops",
                                 "--password-stdin"], input="another secret pw\n")
    assert result.exit_code == 0, result.output
    again = runner.invoke(args=["users", "create-admin", "--username", "ops",
                                "--password-stdin"], input="another secret pw\n")
    assert again.exit_code != 0 and "exists" in again.output
    short = runner.invoke(args=["users", "create-admin", "--username", "x",
                                "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "8 characters" in short.output


def test_brute_force_locks_the_account_then_the_address(app, client):
    for _ in range(5):
        assert login(client, password="wrong").status_code == 401
    locked = login(client)  # the right password, but the account is locked now
    assert locked.status_code == 423 and "locked until" in locked.get_data(as_text=True)
    assert client.get("/api/system/backup").status_code == 401
    from services.extensions import db
    from services.models import User
    with app.app_context():
        user = db.session.query(User).filter_by(username="admin").one()
        user.locked_until = None  # the lock-out ran out
        db.session.commit()
    assert login(client).status_code == 302
    for number in range(15):  # 20 failures from this address in all, any usernames
        assert login(client, password="wrong", username=f"guess{number}").status_code == 401
    limited = login(client)
    assert limited.status_code == 429


def test_expired_tokens_are_refused(app, client):
    result = app.test_cli_runner().invoke(
        args=["tokens", "create", "--name", "short", "--expires-in-days", "1"])
    token = result.output.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/system/backup", headers=headers).status_code == 200
    from datetime import timedelta

    from services.extensions import db
    from services.models import ApiToken
    with app.app_context():
        row = db.session.query(ApiToken).filter_by(name="short").one()
        row.expires_at -= timedelta(days=2)
        db.session.commit()
    assert client.get("/api/system/backup", headers=headers).status_code == 401
    assert "expired" in app.test_cli_runner().invoke(args=["tokens", "list"]).output


def test_sessions_can_be_ended_and_expire(app, client):
    assert login(client).status_code == 302
    assert client.get("/api/system/backup").status_code == 200
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax" and cookie.expires is not None
    result = app.test_cli_runner().invoke(args=["users", "end-sessions", "admin"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/system/backup").status_code == 401


def test_an_admin_token_and_one_without_expiry_are_asked_for(app):
    runner = app.test_cli_runner()
    admin = runner.invoke(args=["tokens", "create", "--name", "ops", "--role", "admin",
                                "--no-expiry"])
    assert admin.exit_code == 0, admin.output
    from services.extensions import db
    from services.models import ApiToken
    with app.app_context():
        stored = db.session.query(ApiToken).filter_by(name="ops").one()
        assert (stored.role, stored.expires_at) == ("admin", None)
