"""The account page and the TOTP second factor, through the test client.

The clock of totp.py and of the login's second step is a fake one (``clock``), so codes
are computed for known time steps and the 5-minute limit can be crossed without waiting.
"""

from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import select

from blueprints import auth
from services import totp
from services.extensions import db
from services.models import ActivityEvent, User
from tests.conftest import ADMIN_PASSWORD
from tests.support.web import csrf_from, login

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data

ACCOUNT = "/system/backup/account"
NEW_PASSWORD = "a brand new passphrase"


class Clock:
    """Stands in for the ``time`` module in totp.py and blueprints/auth.py."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(1_700_000_000.0)  # the start of a 30 s step
    monkeypatch.setattr(totp, "time", clock)
    monkeypatch.setattr(auth, "time", clock)
    return clock


def post(client, path: str, page: str = ACCOUNT, **data: str):
    """POST a form as the browser would: with the CSRF token of the page it is on."""
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token})


def code_at(secret: str, clock: Clock, steps_later: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now + 30 * steps_later)


def user_row(app, username: str = "admin") -> User:
    with app.app_context():
        user = db.session.scalars(select(User).where(User.username == username)).one()
        db.session.expunge(user)
        return user


def events(app, action: str) -> list[tuple[str, str | None, str, str | None]]:
    with app.app_context():
        rows = db.session.scalars(select(ActivityEvent).where(ActivityEvent.action == action)
                                  .order_by(ActivityEvent.id))
        return [(row.actor, row.target, row.outcome, row.detail) for row in rows]


def enroll(app, client, clock: Clock) -> str:
    """Set up and confirm a second factor from the account page; returns its secret."""
    setup = post(client, f"{ACCOUNT}/totp/setup")
    assert setup.status_code == 200
    html = setup.get_data(as_text=True)
    assert "<svg" in html and "otpauth://totp/" in html
    secret = re.search(r'class="totp-secret[^"]*">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    assert user_row(app).totp_secret is None  # nothing stored before the confirmation
    confirmed = post(client, f"{ACCOUNT}/totp/confirm", code=code_at(secret, clock))
    assert confirmed.status_code == 302
    user = user_row(app)
    assert user.totp_secret == secret and user.totp_last_step == clock.now // 30
    return secret


def log_out(client) -> None:
    assert post(client, "/logout", page=ACCOUNT).status_code == 302


def second_step(client, code: str):
    return post(client, "/login/totp", page="/login/totp", code=code)


def logged_in(client) -> bool:
    return client.get("/api/system/backup").status_code == 200


def test_enroll_then_log_in_with_password_and_code(app, client, clock):
    assert login(client).status_code == 302
    page = client.get(ACCOUNT)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Set up a second factor" in page.get_data(as_text=True)
    secret = enroll(app, client, clock)
    assert events(app, "user.totp") == [("admin", "admin", "ok", "enabled")]
    log_out(client)

    asked = login(client, next_url="?next=/system/backup/account")
    assert asked.status_code == 302 and asked.headers["Location"] == "/login/totp"
    assert not logged_in(client)  # the password alone logs nobody in
    assert "Second factor" in client.get("/login/totp").get_data(as_text=True)

    clock.advance(30)
    wrong = second_step(client, "000000" if code_at(secret, clock) != "000000" else "111111")
    assert wrong.status_code == 401 and "Wrong code" in wrong.get_data(as_text=True)
    assert user_row(app).failed_logins == 1 and not logged_in(client)
    assert events(app, "login")[-1] == ("admin", "admin", "failed", "wrong second-factor code")

    right = second_step(client, code_at(secret, clock))
    assert right.status_code == 302 and right.headers["Location"] == "/system/backup/account"
    assert logged_in(client)
    user = user_row(app)
    assert user.failed_logins == 0 and user.totp_last_step == clock.now // 30
    assert events(app, "login")[-1] == ("admin", "admin", "ok", "with second factor")

    log_out(client)  # the same code again, within its 30 s: refused
    assert login(client).headers["Location"] == "/login/totp"
    replayed = second_step(client, code_at(secret, clock))
    assert replayed.status_code == 401 and not logged_in(client)
    assert events(app, "login")[-1][2:] == ("failed", "wrong second-factor code")
    assert second_step(client, code_at(secret, clock, steps_later=1)).status_code == 302
    assert logged_in(client)

    with app.app_context():  # neither the secret nor a code is ever logged
        logged = " ".join(str(row.detail) + str(row.target)
                          for row in db.session.scalars(select(ActivityEvent)))
    assert secret not in logged and code_at(secret, clock) not in logged


def test_wrong_codes_lock_the_account_like_wrong_passwords(app, client, clock):
    login(client)
    secret = enroll(app, client, clock)
    log_out(client)
    clock.advance(30)
    wrong = str((int(code_at(secret, clock)) + 1) % 10**6).zfill(6)
    assert login(client).headers["Location"] == "/login/totp"
    for _ in range(3):
        assert second_step(client, wrong).status_code == 401
    # Giving the password again does not restart the count of wrong codes.
    assert login(client).headers["Location"] == "/login/totp"
    assert user_row(app).failed_logins == 3
    for _ in range(2):
        assert second_step(client, wrong).status_code == 401

    locked = second_step(client, code_at(secret, clock))  # the right code, too late
    assert locked.status_code == 423 and "locked until" in locked.get_data(as_text=True)
    assert not logged_in(client)
    assert user_row(app).locked_until is not None
    assert login(client).status_code == 423  # the password step is locked as well
    assert events(app, "login")[-1][2:] == ("refused", "account locked")
    failures = [event for event in events(app, "login") if event[2] == "failed"]
    assert len(failures) == 5


def test_pending_login_expires_after_five_minutes(app, client, clock):
    login(client)
    secret = enroll(app, client, clock)
    log_out(client)
    assert login(client).headers["Location"] == "/login/totp"
    token = csrf_from(client.get("/login/totp").get_data(as_text=True))
    clock.advance(auth.PENDING_MINUTES * 60 + 1)

    late = client.post("/login/totp", data={"csrf_token": token,
                                            "code": code_at(secret, clock)})
    assert late.status_code == 302 and late.headers["Location"] == "/login"
    assert not logged_in(client)
    assert "Log in with your password first" in client.get("/login").get_data(as_text=True)
    assert user_row(app).totp_last_step == 1_700_000_000 // 30  # the code was not used

    fresh = app.test_client()  # never gave a password at all
    assert fresh.get("/login/totp").headers["Location"] == "/login"


def test_turning_the_second_factor_off_needs_password_and_code(app, client, clock):
    login(client)
    secret = enroll(app, client, clock)
    clock.advance(30)
    code = code_at(secret, clock)

    no_password = post(client, f"{ACCOUNT}/totp/disable", password="wrong", code=code)
    assert no_password.status_code == 400
    assert "nothing was changed" in no_password.get_data(as_text=True)
    bad_code = post(client, f"{ACCOUNT}/totp/disable", password=ADMIN_PASSWORD, code="12345x")
    assert bad_code.status_code == 400
    missing = post(client, f"{ACCOUNT}/totp/disable", password=ADMIN_PASSWORD)
    assert missing.status_code == 400
    user = user_row(app)
    assert user.totp_secret == secret and user.failed_logins == 2
    assert events(app, "user.totp")[1:] == [("admin", "admin", "failed",
                                             "wrong password or code")] * 2

    off = post(client, f"{ACCOUNT}/totp/disable", password=ADMIN_PASSWORD, code=code)
    assert off.status_code == 302
    user = user_row(app)
    assert user.totp_secret is None and user.totp_last_step is None and user.failed_logins == 0
    assert events(app, "user.totp")[-1] == ("admin", "admin", "ok", "disabled")
    assert post(client, f"{ACCOUNT}/totp/disable", password=ADMIN_PASSWORD,
                code=code).status_code == 400  # already off
    log_out(client)
    assert login(client).headers["Location"] == "/system/backup"  # password only again


def test_a_wrong_confirmation_code_enables_nothing(app, client, clock):
    login(client)
    setup = post(client, f"{ACCOUNT}/totp/setup").get_data(as_text=True)
    secret = re.search(r'class="totp-secret[^"]*">([A-Z2-7 ]+)<', setup).group(1)
    wrong = post(client, f"{ACCOUNT}/totp/confirm", code="abcdef")
    assert wrong.status_code == 400 and "Wrong code" in wrong.get_data(as_text=True)
    assert secret in wrong.get_data(as_text=True)  # the same set-up goes on
    assert user_row(app).totp_secret is None
    assert events(app, "user.totp") == []
    fresh = app.test_client()  # another session has no set-up to confirm
    login(fresh)
    assert post(fresh, f"{ACCOUNT}/totp/confirm", code="123456").status_code == 400
    assert user_row(app).totp_secret is None


def test_a_poll_answered_after_the_setup_does_not_undo_it(app, client, clock):
    """The dashboard polls while the setup is on its way; a poll that carried the cookie of
    before must not send it back, or the browser forgets the set-up (CI saw it)."""
    login(client)
    client.get(ACCOUNT)
    cookie_before = client.get_cookie("session").value
    setup = post(client, f"{ACCOUNT}/totp/setup").get_data(as_text=True)
    secret = re.search(r'class="totp-secret[^"]*">([A-Z2-7 ]+)<', setup).group(1).replace(" ", "")
    assert client.get_cookie("session").value != cookie_before

    late_poll = app.test_client()
    late_poll.set_cookie("session", cookie_before)
    answer = late_poll.get("/system/backup/status")
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer.headers

    confirmed = post(client, f"{ACCOUNT}/totp/confirm", code=code_at(secret, clock))
    assert confirmed.status_code == 302
    assert user_row(app).totp_secret == secret


def test_changing_the_password_ends_other_sessions_and_keeps_this_one(app, client):
    other = app.test_client()
    assert login(other).status_code == 302 and login(client).status_code == 302

    def change(current: str, new: str, again: str):
        return post(client, f"{ACCOUNT}/password", current_password=current,
                    new_password=new, confirm_password=again)

    wrong = change("not it", NEW_PASSWORD, NEW_PASSWORD)
    assert wrong.status_code == 400 and "Wrong password" in wrong.get_data(as_text=True)
    short = change(ADMIN_PASSWORD, "short", "short")
    assert short.status_code == 400 and "8 to 1024 characters" in short.get_data(as_text=True)
    differ = change(ADMIN_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x")
    assert differ.status_code == 400 and "differ" in differ.get_data(as_text=True)
    user = user_row(app)
    assert user.session_version == 1 and user.failed_logins == 1
    assert events(app, "user.password") == [("admin", "admin", "failed", "wrong password")]

    assert change(ADMIN_PASSWORD, NEW_PASSWORD, NEW_PASSWORD).status_code == 302
    assert client.get(ACCOUNT).status_code == 200 and logged_in(client)
    sent_away = other.get("/system/backup")
    assert sent_away.status_code == 302 and "/login" in sent_away.headers["Location"]
    user = user_row(app)
    assert user.session_version == 2 and user.check_password(NEW_PASSWORD)
    assert events(app, "user.password")[-1] == ("admin", "admin", "ok", None)
    assert login(app.test_client()).status_code == 401  # the old password is gone
    assert login(app.test_client(), password=NEW_PASSWORD).status_code == 302


def test_a_viewer_manages_their_own_account(app, client, clock):
    with app.app_context():
        viewer = User(username="clerk", role="viewer")
        viewer.set_password("viewer password")
        db.session.add(viewer)
        db.session.commit()
    assert login(client, username="clerk", password="viewer password").status_code == 302
    page = client.get(ACCOUNT).get_data(as_text=True)
    assert "clerk" in page and "viewer" in page
    changed = post(client, f"{ACCOUNT}/password", current_password="viewer password",
                   new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD)
    assert changed.status_code == 302
    setup = post(client, f"{ACCOUNT}/totp/setup").get_data(as_text=True)
    secret = re.search(r'class="totp-secret[^"]*">([A-Z2-7 ]+)<', setup).group(1)
    secret = secret.replace(" ", "")
    confirmed = post(client, f"{ACCOUNT}/totp/confirm", code=code_at(secret, clock))
    assert confirmed.status_code == 302
    assert user_row(app, "clerk").totp_secret == secret
    assert user_row(app).totp_secret is None  # the admin's account is untouched
    assert events(app, "user.totp") == [("clerk", "clerk", "ok", "enabled")]


def test_tokens_have_no_account_page(api):
    assert api.get(ACCOUNT).status_code == 404
    assert api.post(f"{ACCOUNT}/totp/setup").status_code == 404
