"""The account page: every logged-in user manages their own password and second factor.

Changing something sensitive asks for the current password (and, to turn the second
factor off, a current code too). Wrong answers count towards the same lock-out as wrong
logins, so a session left open cannot be used to guess the password (accounts.py).

The WTForms classes only draw the forms (and their CSRF token, which the guard checks);
what comes back is checked by the schemas of blueprints/forms.py, whose messages show
under the fields.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from pydantic import ValidationError
from wtforms import PasswordField, StringField

from blueprints.dashboard.forms import (
    F,
    PasswordChangeForm,
    TotpConfirmForm,
    TotpDisableForm,
    field_errors,
)
from services import accounts, totp
from services.accounts import AccountError
from services.models import User

bp = Blueprint("account", __name__, url_prefix="/system/backup/account")
# Session key of a second factor being set up: {"user": id, "secret": base32}. The session
# cookie is signed, not encrypted, so the pending secret can be read from it, but only by
# this user's own browser, which is shown the very same secret on the page anyway.
SETUP_KEY = "totp_setup"


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password")
    new_password = PasswordField("New password")
    confirm_password = PasswordField("New password again")


class SetupForm(FlaskForm):
    """Only the CSRF token: the secret is made on the server."""


class ConfirmForm(FlaskForm):
    code = StringField("Code from your app")


class DisableForm(FlaskForm):
    password = PasswordField("Current password")
    code = StringField("Code from your app")


@bp.before_request
def users_only():
    """API tokens pass the guard but have no password or second factor to manage."""
    if not isinstance(current_user._get_current_object(), User):
        message = "API tokens have no account page: log in to the dashboard instead."
        return render_template("pages/error.html", message=message), 404
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
    answers = _checked(PasswordChangeForm, form)
    if answers is None:
        return _render(400, password_form=form)
    user = _me()
    try:
        accounts.change_own_password(user, answers.current_password, answers.new_password)
    except AccountError as exc:
        flash(exc.message, "error")
        return _render(400, password_form=form)
    login_user(user)  # the other sessions have ended; this one goes on, under the new version
    flash("Password changed. Your other sessions have ended.", "message")
    return redirect(url_for("dashboard.account.page"))


@bp.post("/totp/setup")
def totp_setup():
    user = _me()
    if user.has_totp:
        flash("The second factor is already on: turn it off first to set up a new one.",
              "error")
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
    answers = _checked(TotpConfirmForm, form)
    if answers is None:
        return _render(400, confirm_form=form)
    try:
        accounts.enable_totp(user, secret, answers.code)
    except AccountError as exc:
        flash(exc.message, "error")
        return _render(400, confirm_form=form)
    session.pop(SETUP_KEY)
    flash("Second factor on: logging in now asks for a code from your app.", "message")
    return redirect(url_for("dashboard.account.page"))


@bp.post("/totp/disable")
def totp_disable():
    form = DisableForm()
    user = _me()
    if not user.has_totp:
        flash("The second factor is already off.", "error")
        return _render(400)
    answers = _checked(TotpDisableForm, form)
    if answers is None:
        return _render(400, disable_form=form)
    try:
        accounts.disable_totp(user, answers.password, answers.code)
    except AccountError as exc:
        flash(exc.message, "error")
        return _render(400, disable_form=form)
    flash("Second factor off: logging in asks for your password only.", "message")
    return redirect(url_for("dashboard.account.page"))


def _me() -> User:
    return current_user._get_current_object()


def _checked(schema: type[F], form: FlaskForm) -> F | None:
    """What was posted, checked by ``schema``; None after putting each refused field's
    messages under it in ``form``."""
    try:
        return schema.model_validate(request.form.to_dict())
    except ValidationError as exc:
        for name, messages in field_errors(exc).items():
            form[name].errors = messages
        return None


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
    return render_template("pages/account.html", user=user, setup=setup, **forms), status


def _setup_view(user: User, secret: str) -> dict[str, str]:
    """What the page shows to set up an app: the QR code, the URI and the secret."""
    uri = totp.provisioning_uri(secret, user.username)
    # qr_svg's markup is generated, not user input: the URI only becomes QR modules.
    return {"qr": Markup(totp.qr_svg(uri)), "uri": uri, "secret": totp.group(secret)}
