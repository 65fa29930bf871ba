"""Login for the dashboard, bearer tokens for scripts, and the guard in front of both.

Every endpoint needs an authenticated admin except the ones in PUBLIC_ENDPOINTS.
State-changing requests authenticated by session cookie must carry a CSRF token;
bearer-token requests carry no cookie, so CSRF does not apply to them.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from blueprints import audit
from blueprints.errors import json_error
from services import accounts, activity
from services.accounts import AccountError
from services.extensions import csrf, login_manager
from services.models import ApiToken, User
from services.permissions import ROLES, allows

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = {"auth.login", "auth.login_totp", "static", "healthz"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PENDING_LOGIN = "login_pending"  # session key: the password was right, the code is due
PENDING_MINUTES = 5
MACHINE_PATHS = ("/api/", "/metrics")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("pages/login.html", form=form), (
            200 if request.method == "GET" else 401)
    try:
        user = accounts.password_login(form.username.data, form.password.data or "",
                                       request.remote_addr)
    except AccountError as exc:
        flash(exc.message, "error")
        return render_template("pages/login.html", form=form), exc.status
    if user.has_totp:
        return _ask_for_code(user)
    return _complete_login(user, _safe_next(request.args.get("next")))


@bp.route("/login/totp", methods=["GET", "POST"])
def login_totp():
    """The second step for users with a second factor: the code from their app."""
    user = _pending_user()
    if user is None:
        session.pop(PENDING_LOGIN, None)
        flash("Log in with your password first (the code is asked for within "
              f"{PENDING_MINUTES} minutes of it).", "error")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("pages/login_totp.html", form=form), (
            200 if request.method == "GET" else 400)
    try:
        accounts.code_login(user, form.code.data or "", request.remote_addr)
    except AccountError as exc:
        flash(exc.message, "error")
        return render_template("pages/login_totp.html", form=form), exc.status
    next_url = _safe_next(session.pop(PENDING_LOGIN).get("next"))
    return _complete_login(user, next_url, "with second factor")


def _ask_for_code(user: User):
    """The password was right: remember it for PENDING_MINUTES and ask for the code.

    failed_logins is not reset here, so giving the password again does not restart the
    count of wrong codes: they lock the account like wrong passwords.
    """
    session[PENDING_LOGIN] = {
        "user": user.id, "version": user.session_version,
        "until": int(time.time()) + PENDING_MINUTES * 60,
        "next": _safe_next(request.args.get("next")),
    }
    return redirect(url_for("auth.login_totp"))


def _pending_user() -> User | None:
    """The user who gave the right password a moment ago, while that still holds."""
    pending = session.get(PENDING_LOGIN)
    if not isinstance(pending, dict) or not isinstance(pending.get("user"), int):
        return None
    if pending.get("until", 0) < time.time():
        return None
    user = accounts.find_user_by_id(pending["user"])
    if user is None or user.session_version != pending.get("version") or not user.has_totp:
        return None
    return user


def _complete_login(user: User, next_url: str, detail: str | None = None):
    session.permanent = True
    login_user(user)
    accounts.complete_login(user, detail)
    return redirect(next_url)


@bp.post("/logout")
@login_required
def logout():
    activity.record("logout", current_user.display_name)
    logout_user()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect to another host."""
    default = url_for("dashboard.index")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """``<id>:<session_version>``; a raised session_version ends older sessions."""
    user_id, _, version = session_id.partition(":")
    user = accounts.find_user_by_id(int(user_id)) if user_id.isdigit() else None
    return user if user is not None and str(user.session_version) == version else None


@login_manager.request_loader
def load_token(req) -> ApiToken | None:
    token = bearer_token()
    if token is None:
        return None
    try:
        return accounts.authenticate_token(token, f"{request.method} {request.path}")
    except accounts.AccountError as refusal:  # too many refused tokens: see unauthorized()
        g.token_refusal = refusal
        return None


def record_unrecorded_call(response: Response) -> Response:
    """after_request: a state-changing call is one event, its action's. A token's call
    whose action recorded none (refused by a service, in conflict, invalid, a probe) gets
    one here, named like the action's, with the outcome its status means; so does a
    dashboard action in conflict (an invalid form is the user's typing, told on the page
    and not logged). Reads are not logged; a token's ``last_used_at`` notes them
    (accounts.authenticate_token)."""
    if (request.method in SAFE_METHODS or not current_user.is_authenticated
            or activity.recorded_in_request()):
        return response
    is_token = isinstance(current_user._get_current_object(), ApiToken)
    if is_token or audit.outcome_of(response.status_code) == "conflict":
        audit.record_call(response)
    return response


def can(endpoint: str) -> bool:
    """Whether the signed-in user's role may call ``endpoint``: templates show an action
    only to roles the server would let through, and views fetch only what they may show."""
    return current_user.is_authenticated and allows(current_user.role, endpoint)


@login_manager.unauthorized_handler
def unauthorized():
    """401 JSON for the API and /metrics (machines), a redirect to the login page for the
    dashboard; 429 for an address that sent too many refused tokens."""
    refusal = g.get("token_refusal")
    if refusal is not None:
        body, status = json_error(refusal.status, refusal.code, refusal.message)
        return body, status, {"Retry-After": str(int(activity.REPEAT_WINDOW.total_seconds()))}
    if request.path.startswith(MACHINE_PATHS):
        return json_error(401, "unauthorized", "authentication required: log in or send "
                          "'Authorization: Bearer <token>'")
    login_url = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):
        return "", 401, {"HX-Redirect": login_url}
    return redirect(login_url)


def forbidden(role: str):
    """403: authenticated, but the role may not do this."""
    message = f"your role ({role}) may not do this; ask an admin"
    if request.method not in SAFE_METHODS:
        activity.record(audit.action_of(request.endpoint), activity.printable(request.path),
                        outcome="refused",
                        detail=f"{request.method} needs a higher role than {role}")
    if request.path.startswith(MACHINE_PATHS):
        return json_error(403, "forbidden", message)
    return render_template("pages/error.html", message=message), 403


def guard():
    """before_request: authentication and role first, then CSRF for cookie sessions."""
    g.bearer = bearer_token() is not None
    if request.endpoint not in PUBLIC_ENDPOINTS:
        principal = current_user._get_current_object()
        if g.bearer and not isinstance(principal, ApiToken):
            return login_manager.unauthorized()
        if not principal.is_authenticated or principal.role not in ROLES:
            return login_manager.unauthorized()
        if not allows(principal.role, request.endpoint):
            return forbidden(principal.role)
    if request.method not in SAFE_METHODS and not g.bearer:
        csrf.protect()
    return None


def init_app(app: Flask) -> None:
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # the guard decides; see its docstring
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    login_manager.login_view = "auth.login"
    app.register_blueprint(bp)
    app.before_request(guard)
    app.after_request(record_unrecorded_call)
