"""accounts.py: the rules for users and API tokens that the dashboard and the CLI share,
against a real catalog: validation, the last admin, self-protection, activity events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services import accounts
from services.accounts import AccountError
from services.extensions import db
from services.models import ActivityEvent, ApiToken, User, utcnow
from tests.conftest import ADMIN_PASSWORD

PASSWORD = "a long enough password"


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def events(action: str | None = None) -> list[ActivityEvent]:
    query = select(ActivityEvent).order_by(ActivityEvent.id)
    if action:
        query = query.where(ActivityEvent.action == action)
    return list(db.session.scalars(query))


def user(username: str) -> User:
    return db.session.scalars(select(User).where(User.username == username)).one()


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def refused(call, *args, status: int = 400, code: str | None = None, **kwargs) -> str:
    """Call, expect an AccountError with ``status``, and that nothing was written."""
    before = (count(User), count(ApiToken), count(ActivityEvent))
    with pytest.raises(AccountError) as caught:
        call(*args, **kwargs)
    assert caught.value.status == status, caught.value.message
    if code:
        assert caught.value.code == code
    db.session.rollback()
    assert (count(User), count(ApiToken), count(ActivityEvent)) == before
    return caught.value.message


def test_create_user_records_an_event_without_the_password(ctx):
    created = accounts.create_user("clerk@shop.example", "viewer", PASSWORD)
    assert created.check_password(PASSWORD) and created.password_hash != PASSWORD
    assert user("clerk@shop.example").role == "viewer"
    [event] = events("user.create")
    assert (event.actor, event.target, event.outcome, event.detail) == (
        "cli", "clerk@shop.example", "ok", "role viewer")
    assert all(PASSWORD not in (e.detail or "") for e in events())

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


@pytest.mark.parametrize("username", ["", "has space", "slash/name", "x" * 81, "..", "é",
                                      "tab\tname"])
def test_usernames_are_checked(ctx, username):
    message = refused(accounts.create_user, username, "viewer", PASSWORD)
    assert "username must be 1 to 80 letters" in message


def test_roles_passwords_and_duplicates_are_checked(ctx):
    assert "unknown role 'root'" in refused(accounts.create_user, "bob", "root", PASSWORD)
    assert "at least 8 characters" in refused(accounts.create_user, "bob", "viewer", "short")
    assert "at most" in refused(accounts.create_user, "bob", "viewer", "x" * 1025)
    assert "exists" in refused(accounts.create_user, "admin", "viewer", PASSWORD, status=409)
    assert "unknown role" in refused(accounts.set_role, "admin", "superuser")
    for call, args in ((accounts.set_role, ("ghost", "viewer")), (accounts.unlock, ("ghost",)),
                       (accounts.reset_password, ("ghost", PASSWORD)),
                       (accounts.end_sessions, ("ghost",)), (accounts.reset_totp, ("ghost",)),
                       (accounts.delete_user, ("ghost",))):
        assert "no user named 'ghost'" in refused(call, *args, status=404, code="not_found")


def test_the_last_admin_is_kept(ctx):
    message = refused(accounts.set_role, "admin", "operator", status=409, code="last_admin")
    assert "last admin" in message
    refused(accounts.delete_user, "admin", status=409, code="last_admin")
    assert user("admin").role == "admin"

    accounts.create_user("second", "admin", PASSWORD)
    accounts.set_role("admin", "operator")
    assert user("admin").role == "operator"
    [event] = events("user.role")
    assert (event.target, event.detail) == ("admin", "admin -> operator")
    refused(accounts.delete_user, "second", status=409, code="last_admin")
    refused(accounts.set_role, "second", "viewer", status=409, code="last_admin")
    accounts.delete_user("admin")  # an operator now: not the last admin
    assert [u.username for u in accounts.list_users()] == ["second"]
    assert events("user.delete")[0].detail == "role operator"


def test_nobody_deletes_themselves_or_changes_their_own_role(ctx):
    accounts.create_user("second", "admin", PASSWORD)
    assert "your own role" in refused(accounts.set_role, "admin", "viewer", acting="admin",
                                      status=403)
    assert "delete yourself" in refused(accounts.delete_user, "admin", acting="admin",
                                        status=403)
    accounts.set_role("admin", "viewer", acting="second")  # another admin may
    accounts.delete_user("admin", acting="second")
    assert count(User) == 1


def test_an_unchanged_role_is_no_event(ctx):
    accounts.set_role("admin", "admin")
    assert events("user.role") == []


def test_reset_password_ends_the_sessions(ctx):
    before = user("admin").session_version
    accounts.reset_password("admin", PASSWORD)
    admin = user("admin")
    assert admin.check_password(PASSWORD) and not admin.check_password(ADMIN_PASSWORD)
    assert admin.session_version == before + 1
    [event] = events("user.password")
    assert event.target == "admin" and PASSWORD not in (event.detail or "")
    refused(accounts.reset_password, "admin", "2short")
    assert user("admin").check_password(PASSWORD)


def test_end_sessions_unlock_and_reset_totp(ctx):
    admin = user("admin")
    version = admin.session_version
    admin.failed_logins, admin.locked_until = 3, utcnow() + timedelta(minutes=10)
    admin.totp_secret, admin.totp_last_step = "JBSWY3DPEHPK3PXP", 123
    db.session.commit()
    assert accounts.is_locked(admin) and admin.has_totp

    accounts.end_sessions("admin")
    accounts.unlock("admin")
    accounts.reset_totp("admin")
    admin = user("admin")
    assert admin.session_version == version + 1
    assert (admin.failed_logins, admin.locked_until) == (0, None)
    assert (admin.totp_secret, admin.totp_last_step, admin.has_totp) == (None, None, False)
    assert [(e.action, e.target, e.actor) for e in events()] == [
        ("user.sessions", "admin", "cli"), ("user.unlock", "admin", "cli"),
        ("user.totp", "admin", "cli")]
    assert "JBSWY3DPEHPK3PXP" not in str([e.detail for e in events()])


def test_create_list_and_revoke_tokens(ctx):
    row, token = accounts.create_token("nightly-cron", "viewer", 30)
    assert token.startswith("pbm_") and row.token_hash == ApiToken.hash(token)
    assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
    assert accounts.token_state(row) == "active"
    [event] = events("token.create")
    assert (event.target, event.actor) == ("nightly-cron", "cli")
    assert event.detail.startswith("role viewer, until ") and token not in event.detail
    forever, _ = accounts.create_token("prometheus", "viewer")
    assert forever.expires_at is None
    assert [t.name for t in accounts.list_tokens()] == ["nightly-cron", "prometheus"]

    revoked = accounts.revoke_token("nightly-cron")
    assert revoked.revoked_at is not None and not revoked.usable
    assert accounts.token_state(revoked) == "revoked"
    accounts.revoke_token("nightly-cron")  # again: nothing changes, nothing recorded
    accounts.revoke_token(forever.id)  # by id
    assert [e.target for e in events("token.revoke")] == ["nightly-cron", "prometheus"]
    assert all(token not in (e.detail or "") for e in events())


def test_an_expired_token_says_so(ctx):
    row, _ = accounts.create_token("short", "viewer", 1)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert accounts.token_state(row) == "expired"


def test_token_input_is_checked(ctx):
    accounts.create_token("taken", "admin")
    assert "token name must be" in refused(accounts.create_token, "no spaces", "admin")
    assert "token name must be" in refused(accounts.create_token, "", "admin")
    assert "unknown role" in refused(accounts.create_token, "x", "root")
    for days in (0, -1, 3651, True, "5", 1.5):
        assert "whole number of days" in refused(accounts.create_token, "x", "admin", days)
    assert "exists" in refused(accounts.create_token, "taken", "admin", status=409)
    accounts.revoke_token("taken")
    refused(accounts.create_token, "taken", "admin", status=409)  # names stay taken
    assert "no token named 'ghost'" in refused(accounts.revoke_token, "ghost", status=404)
    refused(accounts.revoke_token, 99999, status=404)
    refused(accounts.revoke_token, 2**40, status=404)


def test_actions_in_a_request_name_the_logged_in_user(app):
    from flask_login import login_user

    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        login_user(user("admin"))
        accounts.create_user("bob", "operator", PASSWORD)
        [event] = events("user.create")
        assert (event.actor, event.source) == ("admin", "192.0.2.7")


def test_the_cli_uses_the_same_rules(app):
    cli = app.test_cli_runner()

    def run(*args: str, stdin: str | None = None):
        return cli.invoke(args=list(args), input=stdin)

    assert run("users", "create", "--username", "bob", "--role", "viewer",
               "--password-stdin", stdin=f"{PASSWORD}\n").exit_code == 0
    bad = run("users", "create", "--username", "no spaces", "--role", "viewer",
              "--password-stdin", stdin=f"{PASSWORD}\n")
    assert bad.exit_code != 0 and "username must be" in bad.output
    assert run("users", "set-role", "bob", "operator").output == "'bob' is now operator\n"
    last = run("users", "set-role", "admin", "viewer")
    assert last.exit_code != 0 and "last admin" in last.output
    demote = run("users", "create-admin", "--username", "admin", "--password-stdin",
                 "--update", stdin=f"{PASSWORD}\n")
    assert demote.exit_code == 0  # still admin: a password reset only
    listing = run("users", "list").output.splitlines()
    assert [line.split("\t")[:4] for line in listing] == [
        ["admin", "admin", "2FA off", "not locked"], ["bob", "operator", "2FA off", "not locked"]]
    assert run("users", "unlock", "bob").exit_code == 0
    assert run("users", "reset-totp", "bob").exit_code == 0
    assert run("users", "delete", "bob", stdin="n\n").exit_code != 0
    assert run("users", "delete", "admin", "--yes").exit_code != 0
    assert run("users", "delete", "bob", "--yes").output == "user 'bob' deleted\n"
    missing = run("users", "unlock", "bob")
    assert missing.exit_code != 0 and "no user named 'bob'" in missing.output

    assert run("tokens", "create", "--name", "two words").exit_code != 0
    assert run("tokens", "create", "--name", "cron").exit_code == 0
    again = run("tokens", "create", "--name", "cron")
    assert again.exit_code != 0 and "exists" in again.output
    assert run("tokens", "revoke", "ghost").exit_code != 0
    with app.app_context():
        actions = [(e.action, e.actor) for e in events()]
    assert actions == [
        ("user.create", "cli"), ("user.role", "cli"), ("user.password", "cli"),
        ("user.unlock", "cli"), ("user.totp", "cli"), ("user.delete", "cli"),
        ("token.create", "cli")]


def test_a_refusing_service_rolls_back_itself(app):
    """Blueprints never roll back: a service that refuses has done it, releasing the rows it
    locked (here the admins', locked to keep the last one)."""
    from services import accounts
    from services.extensions import db

    with app.app_context():
        with pytest.raises(accounts.AccountError, match="it is the last admin"):
            accounts.delete_user("admin")
        assert not db.session().in_transaction()
        assert accounts.find_user("admin") is not None


def test_passwords_are_hashed_with_scrypt_unless_the_tests_say_otherwise(app):
    """The suite's cheaper hash (PASSWORD_HASH_METHOD in its test config) is the only
    exception: an app without that key uses werkzeug's scrypt."""
    with app.app_context():
        del app.config["PASSWORD_HASH_METHOD"]
        user = accounts.create_user("carol", "viewer", "a long enough password")
        assert user.password_hash.startswith("scrypt:32768:8:1$")
        assert user.check_password("a long enough password")
        assert not user.check_password("another password")
