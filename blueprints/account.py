"""The account page: every logged-in user manages their own password and second factor.

Changing something sensitive asks for the current password (and, to turn the second
factor off, a current code too). Wrong answers count towards the same lock-out as wrong
logins, so a session left open cannot be used to guess the password.
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, session, url_for
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

import activity
import totp
from accounts import count_failed_login, is_locked
from models import User

bp = Blueprint("account", __name__, url_prefix="/system/backup/account")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte of "password" costs the server, not them
# Session key of a second factor being set up: {"user": id, "secret": base32}. The session
# cookie is signed, not encrypted, so the pending secret can be read from it, but only by
# this user's own browser, which is shown the very same secret on the page anyway.
SETUP_KEY = "totp_setup"


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[
        DataRequired(),
        Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH,
               message=f"The new password needs {MIN_PASSWORD_LENGTH} to "
                       f"{MAX_PASSWORD_LENGTH} characters."),
    ])
    confirm_password = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("new_password", message="The two new passwords differ."),
    ])


class SetupForm(FlaskForm):
    """Only the CSRF token: the secret is made on the server."""


class ConfirmForm(FlaskForm):
    code = StringField("Code from your app", validators=[DataRequired()])


class DisableForm(FlaskForm):
    password = PasswordField("Current password", validators=[DataRequired()])
    code = StringField("Code from your app", validators=[DataRequired()])


@bp.before_request
def users_only():
    """API tokens pass the guard but have no password or second factor to manage."""
    if not isinstance(current_user._get_current_object(), User):
        message = "API tokens have no account page: log in to the dashboard instead."
        return render_template("error.html", message=message), 404
    return None


@bp.after_request
def no_store(response: Response) -> Response:
    """The page can show a secret being set up: browsers and proxies must not keep it."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
def page():
    return _render()


@bp.post("/password")
def change_password():
    form = PasswordForm()
    if not form.validate_on_submit():
        return _render(400, password_form=form)
    user = _me()
    if not _confirmed(user, "user.password", form.current_password.data):
        return _render(400, password_form=form)
    user.set_password(form.new_password.data)
    user.session_version += 1  # ends the user's other sessions...
    login_user(user)  # ...while this one goes on, under the new version
    activity.record("user.password", user.username)
    flash("Password changed. Your other sessions have ended.", "message")
    return redirect(url_for("account.page"))


@bp.post("/totp/setup")
def totp_setup():
    user = _me()
    if user.has_totp:
        flash("The second factor is already on: turn it off first to set up a new one.",
              "error")
        return _render(400)
    if not SetupForm().validate_on_submit():
        return _render(400)
    session[SETUP_KEY] = {"user": user.id, "secret": totp.new_secret()}
    return _render()


@bp.post("/totp/confirm")
def totp_confirm():
    form = ConfirmForm()
    user = _me()
    secret = _pending_secret(user)
    if secret is None or user.has_totp:
        flash("There is no second factor being set up: start again.", "error")
        return _render(400)
    if not form.validate_on_submit():
        return _render(400, confirm_form=form)
    step = totp.accepted_step(secret, form.code.data or "", None)
    if step is None:
        flash("Wrong code: check that your phone's clock is right and enter the code the app "
              "shows now.", "error")
        return _render(400, confirm_form=form)
    user.totp_secret, user.totp_last_step = secret, step
    session.pop(SETUP_KEY)
    activity.record("user.totp", user.username, detail="enabled")
    flash("Second factor on: logging in now asks for a code from your app.", "message")
    return redirect(url_for("account.page"))


@bp.post("/totp/disable")
def totp_disable():
    form = DisableForm()
    user = _me()
    if not user.has_totp:
        flash("The second factor is already off.", "error")
        return _render(400)
    if not form.validate_on_submit():
        return _render(400, disable_form=form)
    if not _confirmed(user, "user.totp", form.password.data, form.code.data):
        return _render(400, disable_form=form)
    user.totp_secret, user.totp_last_step = None, None
    activity.record("user.totp", user.username, detail="disabled")
    flash("Second factor off: logging in asks for your password only.", "message")
    return redirect(url_for("account.page"))


def _me() -> User:
    return current_user._get_current_object()


def _confirmed(user: User, action: str, password: str | None, code: str | None = None) -> bool:
    """Whether the password (and the code, when one is given) are right; else flash why not
    and record the refusal under ``action``. A wrong answer counts as a failed login."""
    if is_locked(user):
        activity.record(action, user.username, outcome="refused", detail="account locked")
        flash(f"Too many wrong passwords or codes: this account is locked until "
              f"{user.locked_until:%H:%M} UTC.", "error")
        return False
    right = user.check_password(password or "")
    if code is not None:
        right = right and totp.accepted_step(
            user.totp_secret or "", code, user.totp_last_step) is not None
    if right:
        user.failed_logins = 0  # "in a row": saved with the change itself
        return True
    count_failed_login(user)
    what = "password" if code is None else "password or code"
    activity.record(action, user.username, outcome="failed", detail=f"wrong {what}")
    flash(f"Wrong {what}: nothing was changed." + (
        "" if code is None else " Each code works once: wait for the next one."), "error")
    return False


def _pending_secret(user: User) -> str | None:
    pending = session.get(SETUP_KEY)
    if isinstance(pending, dict) and pending.get("user") == user.id:
        return pending.get("secret")
    return None


def _render(status: int = 200, **submitted: FlaskForm) -> tuple[str, int]:
    """The page; the forms not submitted in this request are shown empty."""
    user = _me()
    forms = {
        "password_form": PasswordForm(formdata=None),
        "setup_form": SetupForm(formdata=None),
        "confirm_form": ConfirmForm(formdata=None),
        "disable_form": DisableForm(formdata=None),
        **submitted,
    }
    secret = None if user.has_totp else _pending_secret(user)
    setup = _setup_view(user, secret) if secret else None
    return render_template("account.html", user=user, setup=setup, **forms), status


def _setup_view(user: User, secret: str) -> dict[str, str]:
    """What the page shows to set up an app: the QR code, the URI and the secret."""
    uri = totp.provisioning_uri(secret, user.username)
    # qr_svg's markup is generated, not user input: the URI only becomes QR modules.
    return {"qr": Markup(totp.qr_svg(uri)), "uri": uri, "secret": totp.group(secret)}
