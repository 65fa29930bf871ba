"""Users and API tokens in the dashboard, under /system/backup/users: admins only.

No endpoint here is in permissions.py, so every one of them needs an admin. The rules
(validation, the last admin, activity events) are in accounts.py, shared with the CLI.

HTML fragments for htmx, like ``dashboard_monitoring.py``: a user action swaps the users
panel (#users), a token action the tokens panel (#tokens). A refusal comes back with a
4xx status, retargeted next to what caused it: the create forms again with the reason and
what was typed (never a password), or the panel's error slot for a row's action.
A new token is shown once, in the tokens panel that the create form swaps in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user, login_user

import accounts
from accounts import AccountError
from extensions import db
from models import ApiToken, User

bp = Blueprint("dashboard_users", __name__, url_prefix="/system/backup/users")

Fragment = tuple[str, int, dict[str, str]]
ROLE_LABELS = {"admin": "Admin", "operator": "Operator", "viewer": "Viewer"}
NEW_USER = {"username": "", "role": "viewer"}
NEW_TOKEN = {"name": "", "role": "viewer", "expires_in_days": "90"}
bp.add_app_template_global(ROLE_LABELS, "USER_ROLE_LABELS")


@dataclass(frozen=True)
class UserView:
    user: User
    locked: bool
    me: bool


@dataclass(frozen=True)
class TokenView:
    token: ApiToken
    state: str


@bp.get("")
def index() -> str:
    return render_template("users.html", **_users_context(), **_tokens_context())


@bp.get("/tokens")
def tokens_panel() -> str:
    """The tokens panel; its "Done" button reloads it without the token shown once."""
    return render_template("partials/users_tokens.html", **_tokens_context())


# Users


@bp.post("")
def create_user() -> Fragment:
    values = {"username": request.form.get("username", "").strip(),
              "role": request.form.get("role", "")}
    try:
        user = accounts.create_user(values["username"], values["role"],
                                    request.form.get("password", ""))
    except AccountError as exc:
        db.session.rollback()
        html = render_template("partials/users_form.html", user_form=values, error=exc.message)
        return html, exc.status, {"HX-Retarget": "#user-form", "HX-Reswap": "outerHTML"}
    return _users_panel(f"User {user.username} created ({user.role}).")


@bp.post("/<id:user_id>/role")
def set_role(user_id: int) -> Fragment:
    role = request.form.get("role", "")
    return _user_action(user_id, lambda name: accounts.set_role(name, role, acting=_acting()),
                        f"{{}} is now {role}.")


@bp.post("/<id:user_id>/password")
def reset_password(user_id: int) -> Fragment:
    password = request.form.get("password", "")
    return _user_action(user_id, lambda name: accounts.reset_password(name, password),
                        "New password set for {}; their sessions have ended.")


@bp.post("/<id:user_id>/unlock")
def unlock(user_id: int) -> Fragment:
    return _user_action(user_id, accounts.unlock, "{} is unlocked.")


@bp.post("/<id:user_id>/sessions")
def end_sessions(user_id: int) -> Fragment:
    return _user_action(user_id, accounts.end_sessions, "Every session of {} has ended.")


@bp.post("/<id:user_id>/totp")
def reset_totp(user_id: int) -> Fragment:
    return _user_action(user_id, accounts.reset_totp, "Two-factor login is off for {}.")


@bp.post("/<id:user_id>/delete")
def delete_user(user_id: int) -> Fragment:
    typed = request.form.get("confirm_username", "").strip()

    def delete(name: str) -> None:
        if typed != name:
            raise AccountError(f"To delete {name}, type the username exactly as shown (you "
                               f"typed {typed!r}). Nothing was deleted.",
                               code="confirmation_mismatch")
        accounts.delete_user(name, acting=_acting())

    return _user_action(user_id, delete, "User {} deleted.")


def _user_action(user_id: int, change: Callable[[str], Any], done: str) -> Fragment:
    """Apply ``change`` to the user's name; the users panel with ``done`` or the refusal."""
    try:
        user = _user(user_id)
        username = user.username
        change(username)
    except AccountError as exc:
        db.session.rollback()
        return _error(exc, "#users-error")
    if username == _acting():
        login_user(user)  # a new password or ended sessions: keep this one session going
    return _users_panel(done.format(username))


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise AccountError(f"no user with id {user_id}; reload the page", status=404,
                           code="not_found")
    return user


def _acting() -> str | None:
    """The acting admin's username; None for an API token, which is nobody's account."""
    principal = current_user._get_current_object()
    return principal.username if isinstance(principal, User) else None


def _users_panel(notice: str) -> Fragment:
    html = render_template("partials/users_table.html", notice=notice, clear_alerts=True,
                           **_users_context())
    return html, 200, {}


def _users_context() -> dict[str, Any]:
    me = _acting()
    views = [UserView(user, accounts.is_locked(user), user.username == me)
             for user in accounts.list_users()]
    return {"user_views": views, "user_form": NEW_USER}


# API tokens


@bp.post("/tokens")
def create_token() -> Fragment:
    values = {key: request.form.get(key, default).strip() for key, default in NEW_TOKEN.items()}
    try:
        row, token = accounts.create_token(values["name"], values["role"],
                                           _days(values["expires_in_days"]))
    except AccountError as exc:
        db.session.rollback()
        html = render_template("partials/users_token_form.html", token_form=values,
                               error=exc.message)
        return html, exc.status, {"HX-Retarget": "#token-form", "HX-Reswap": "outerHTML"}
    html = render_template("partials/users_tokens.html", created=row, clear_token=token,
                           clear_alerts=True, **_tokens_context())
    return html, 200, {"Cache-Control": "no-store"}


@bp.post("/tokens/<id:token_id>/revoke")
def revoke_token(token_id: int) -> Fragment:
    try:
        row = accounts.revoke_token(token_id)
    except AccountError as exc:
        db.session.rollback()
        return _error(exc, "#tokens-error")
    html = render_template("partials/users_tokens.html", clear_alerts=True,
                           notice=f"Token {row.name} revoked: requests with it are refused.",
                           **_tokens_context())
    return html, 200, {}


def _days(text: str) -> int | None:
    """The form's expiry: empty for never, else whole days (accounts checks the range)."""
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise AccountError(f"the expiry must be a whole number of days, or empty for none "
                           f"(got {text!r})")
    return int(text)


def _tokens_context() -> dict[str, Any]:
    views = [TokenView(row, accounts.token_state(row)) for row in accounts.list_tokens()]
    return {"token_views": views, "token_form": NEW_TOKEN}


# Shared


def _error(exc: AccountError, slot: str) -> Fragment:
    """The refusal, swapped into the error slot of the panel that caused it."""
    html = render_template("partials/inline_error.html", message=exc.message)
    return html, exc.status, {"HX-Retarget": slot, "HX-Reswap": "innerHTML"}
