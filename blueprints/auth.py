"""Login for the dashboard, bearer tokens for scripts, and the guard in front of both.

Every endpoint needs an authenticated admin except the ones in PUBLIC_ENDPOINTS.
State-changing requests authenticated by session cookie must carry a CSRF token;
bearer-token requests carry no cookie, so CSRF does not apply to them.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
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
from sqlalchemy import func, select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

import activity
from blueprints.errors import json_error
from extensions import csrf, db, login_manager
from models import ActivityEvent, ApiToken, User, utcnow
from permissions import ROLES, allows

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = {"auth.login", "static", "healthz"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_FAILED_LOGINS = 5  # in a row, per account
MAX_FAILURES_PER_ADDRESS = 20  # per LOCKOUT_MINUTES
LOCKOUT_MINUTES = 15
MACHINE_PATHS = ("/api/", "/metrics")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        if _too_many_failures_from_here():
            activity.record("login", form.username.data, outcome="refused",
                            actor=form.username.data or "anonymous", detail="rate limited")
            flash("Too many failed logins from your address; wait a few minutes.", "error")
            return render_template("login.html", form=form), 429
        user = db.session.scalars(select(User).where(User.username == form.username.data)).first()
        if user is not None and user.locked_until and user.locked_until > utcnow():
            activity.record("login", user.username, outcome="refused", actor=user.username,
                            detail="account locked")
            flash(f"Too many failed logins: this account is locked until "
                  f"{user.locked_until:%H:%M} UTC.", "error")
            return render_template("login.html", form=form), 423
        if user is not None and user.check_password(form.password.data or ""):
            user.failed_logins, user.locked_until = 0, None
            session.permanent = True
            login_user(user)
            activity.record("login", user.username)
            return redirect(_safe_next(request.args.get("next")))
        _count_failure(user)
        activity.record("login", form.username.data, outcome="failed",
                        actor=form.username.data or "anonymous")
        flash("Wrong username or password.", "error")
    return render_template("login.html", form=form), 200 if request.method == "GET" else 401


def _count_failure(user: User | None) -> None:
    """MAX_FAILED_LOGINS wrong passwords in a row lock the account for LOCKOUT_MINUTES."""
    if user is None:
        return
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.failed_logins = 0
        user.locked_until = utcnow() + timedelta(minutes=LOCKOUT_MINUTES)


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
        return None
    row.last_used_at = utcnow()
    db.session.commit()
    return row


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
