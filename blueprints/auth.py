"""Login for the dashboard, bearer tokens for scripts, and the guard in front of both.

Every endpoint needs an authenticated admin except the ones in PUBLIC_ENDPOINTS.
State-changing requests authenticated by session cookie must carry a CSRF token;
bearer-token requests carry no cookie, so CSRF does not apply to them.
"""

from __future__ import annotations

import time
from datetime import timedelta
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
from sqlalchemy import func, or_, select, update
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

import activity
import totp
from accounts import LOCKOUT_MINUTES, count_failed_login, is_locked
from blueprints.errors import json_error
from extensions import csrf, db, login_manager
from models import ActivityEvent, ApiToken, User, utcnow
from permissions import ROLES, allows

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = {"auth.login", "auth.login_totp", "static", "healthz"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_FAILURES_PER_ADDRESS = 20  # per LOCKOUT_MINUTES
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
    if form.validate_on_submit():
        if _too_many_failures_from_here():
            return _refuse_address(form, "login.html", form.username.data)
        user = db.session.scalars(select(User).where(User.username == form.username.data)).first()
        if user is not None and is_locked(user):
            return _refuse_locked(form, "login.html", user)
        if user is not None and user.check_password(form.password.data or ""):
            if user.has_totp:
                return _ask_for_code(user)
            return _complete_login(user, _safe_next(request.args.get("next")))
        count_failed_login(user)
        activity.record("login", form.username.data, outcome="failed",
                        actor=form.username.data or "anonymous")
        flash("Wrong username or password.", "error")
    return render_template("login.html", form=form), 200 if request.method == "GET" else 401


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
        return render_template("login_totp.html", form=form), (
            200 if request.method == "GET" else 400)
    if _too_many_failures_from_here():
        return _refuse_address(form, "login_totp.html", user.username)
    if is_locked(user):
        return _refuse_locked(form, "login_totp.html", user)
    step = totp.accepted_step(user.totp_secret or "", form.code.data or "", user.totp_last_step)
    if step is None or not _claim_step(user, step):
        count_failed_login(user)
        activity.record("login", user.username, outcome="failed", actor=user.username,
                        detail="wrong second-factor code")
        flash("Wrong code, or a code already used: enter the code your app shows now.", "error")
        return render_template("login_totp.html", form=form), 401
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
    user = db.session.get(User, pending["user"])
    if user is None or user.session_version != pending.get("version") or not user.has_totp:
        return None
    return user


def _claim_step(user: User, step: int) -> bool:
    """Record ``step`` as used, atomically: of two requests with one code, only one wins."""
    claimed = db.session.execute(
        update(User)
        .where(User.id == user.id,
               or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step))
    return claimed.rowcount == 1


def _complete_login(user: User, next_url: str, detail: str | None = None):
    user.failed_logins, user.locked_until = 0, None
    session.permanent = True
    login_user(user)
    activity.record("login", user.username, detail=detail)
    return redirect(next_url)


def _refuse_address(form: FlaskForm, template: str, name: str | None):
    """429: too many failed logins from this address, whatever the usernames."""
    activity.record("login", name, outcome="refused", actor=name or "anonymous",
                    detail="rate limited")
    flash("Too many failed logins from your address; wait a few minutes.", "error")
    return render_template(template, form=form), 429


def _refuse_locked(form: FlaskForm, template: str, user: User):
    """423: wrong passwords or codes have locked the account for now."""
    activity.record("login", user.username, outcome="refused", actor=user.username,
                    detail="account locked")
    flash(f"Too many failed logins: this account is locked until "
          f"{user.locked_until:%H:%M} UTC.", "error")
    return render_template(template, form=form), 423


def _too_many_failures_from_here() -> bool:
    """Rate limit per address, whatever the usernames tried, from the activity log."""
    since = utcnow() - timedelta(minutes=LOCKOUT_MINUTES)
    failures = db.session.scalar(select(func.count(ActivityEvent.id)).where(
        ActivityEvent.action == "login", ActivityEvent.outcome == "failed",
        ActivityEvent.source == request.remote_addr, ActivityEvent.at > since))
    return failures >= MAX_FAILURES_PER_ADDRESS


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
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    return user if user is not None and str(user.session_version) == version else None


@login_manager.request_loader
def load_token(req) -> ApiToken | None:
    token = bearer_token()
    if token is None:
        return None
    row = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(token))
    ).first()
    if row is None or not row.usable:
        _record_refusal(row)
        return None
    row.last_used_at = utcnow()
    db.session.commit()
    return row


def _record_refusal(row: ApiToken | None) -> None:
    """Anyone can send a bogus token, as often as they like: repeats from one address are
    counted on one event, and the call tried is kept short and printable."""
    reason = "unknown token" if row is None else "revoked" if row.revoked_at else "expired"
    activity.record_repeatable(
        "token.refused", reason, activity.printable(f"{request.method} {request.path}"),
        outcome="refused", actor=f"token:{row.name}" if row else "anonymous")


def record_token_use(response: Response) -> Response:
    """after_request: a token's every state-changing call, allowed or not, is its own audit
    event, besides whatever event the action itself records."""
    if request.method in SAFE_METHODS or not g.get("bearer"):
        return response
    principal = current_user._get_current_object()
    if isinstance(principal, ApiToken):
        outcome = ("ok" if response.status_code < 400 else
                   "refused" if response.status_code in (401, 403, 409, 423) else "failed")
        if response.status_code >= 400:
            db.session.rollback()  # whatever the refused call left pending is not kept
        activity.record("token.use", principal.name, outcome=outcome,
                        detail=f"{request.method} {request.path} -> {response.status_code}")
    return response


@login_manager.unauthorized_handler
def unauthorized():
    """401 JSON for the API and /metrics (machines), a redirect to the login page for the
    dashboard."""
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
        activity.record(request.endpoint or "request", request.path, outcome="refused",
                        detail=f"{request.method} needs a higher role than {role}")
    if request.path.startswith(MACHINE_PATHS):
        return json_error(403, "forbidden", message)
    return render_template("error.html", message=message), 403


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
    app.after_request(record_token_use)
