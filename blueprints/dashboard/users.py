"""Users and API tokens in the dashboard, under /system/backup/users: admins only.

No endpoint here is in permissions.py, so every one of them needs an admin. The forms are
checked by blueprints/forms.py; the rules (validation, the last admin, activity events)
are in accounts.py, shared with the CLI.

HTML fragments for htmx, like ``monitoring.py``: a user action swaps the users
panel (#users), a token action the tokens panel (#tokens). A refusal comes back with a
4xx status, retargeted next to what caused it: the create forms again with the reason and
what was typed (never a password), or the panel's error slot for a row's action.
A new token is shown once, in the tokens panel that the create form swaps in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user, login_user

from blueprints.dashboard.forms import (
    DeleteUserForm,
    NewTokenForm,
    NewUserForm,
    PasswordResetForm,
    RoleForm,
    parse,
)
from services import accounts
from services.errors import CatalogError
from services.models import ApiToken, User

bp = Blueprint("users", __name__, url_prefix="/system/backup/users")

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
    return render_template("pages/users.html", **_users_context(), **_tokens_context())


@bp.get("/tokens")
def tokens_panel() -> str:
    """The tokens panel; its "Done" button reloads it without the token shown once."""
    return render_template("partials/users/tokens.html", **_tokens_context())


# Users


@bp.post("")
def create_user() -> Fragment:
    values = {"username": request.form.get("username", "").strip(),
              "role": request.form.get("role", "")}
    try:
        form = parse(NewUserForm, request.form)
        user = accounts.create_user(form.username, form.role, form.password)
    except CatalogError as exc:
        html = render_template("partials/users/form.html", user_form=values, error=exc.message)
        return html, exc.status, {"HX-Retarget": "#user-form", "HX-Reswap": "outerHTML"}
    return _users_panel(f"User {user.username} created ({user.role}).")


@bp.post("/<id:user_id>/role")
def set_role(user_id: int) -> Fragment:
    def change(name: str) -> str:
        role = parse(RoleForm, request.form).role
        accounts.set_role(name, role, acting=_acting())
        return f"{name} is now {role}."

    return _user_action(user_id, change)


@bp.post("/<id:user_id>/password")
def reset_password(user_id: int) -> Fragment:
    def change(name: str) -> str:
        accounts.reset_password(name, parse(PasswordResetForm, request.form).password)
        return f"New password set for {name}; their sessions have ended."

    return _user_action(user_id, change)


@bp.post("/<id:user_id>/unlock")
def unlock(user_id: int) -> Fragment:
    return _user_action(user_id, _then(accounts.unlock, "{} is unlocked."))


@bp.post("/<id:user_id>/sessions")
def end_sessions(user_id: int) -> Fragment:
    return _user_action(user_id, _then(accounts.end_sessions, "Every session of {} has ended."))


@bp.post("/<id:user_id>/totp")
def reset_totp(user_id: int) -> Fragment:
    return _user_action(user_id, _then(accounts.reset_totp, "Two-factor login is off for {}."))


@bp.post("/<id:user_id>/delete")
def delete_user(user_id: int) -> Fragment:
    def change(name: str) -> str:
        typed = parse(DeleteUserForm, request.form).confirm_username
        if typed != name:
            raise CatalogError(f"To delete {name}, type the username exactly as shown (you "
                               f"typed {typed!r}). Nothing was deleted.",
                               code="confirmation_mismatch")
        accounts.delete_user(name, acting=_acting())
        return f"User {name} deleted."

    return _user_action(user_id, change)


def _user_action(user_id: int, change: Callable[[str], str]) -> Fragment:
    """Apply ``change`` to the user's name (after the 404 of an unknown user, so the form
    is read only for a user who exists); the users panel with the notice it returns, or
    the refusal."""
    try:
        user = accounts.get_user_by_id(user_id)
        username = user.username
        notice = change(username)
    except CatalogError as exc:
        return _error(exc, "#users-error")
    if username == _acting():
        login_user(user)  # a new password or ended sessions: keep this one session going
    return _users_panel(notice)


def _then(action: Callable[[str], Any], done: str) -> Callable[[str], str]:
    """``action`` on the user's name, then ``done`` with the name in it."""

    def change(name: str) -> str:
        action(name)
        return done.format(name)

    return change


def _acting() -> str | None:
    """The acting admin's username; None for an API token, which is nobody's account."""
    principal = current_user._get_current_object()
    return principal.username if isinstance(principal, User) else None


def _users_panel(notice: str) -> Fragment:
    html = render_template("partials/users/table.html", notice=notice, clear_alerts=True,
                           **_users_context())
    return html, 200, {}


def page_context() -> dict[str, Any]:
    """The users and tokens panels, for the page's Settings section."""
    return {**_users_context(), **_tokens_context()}


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
        form = parse(NewTokenForm, request.form)
        row, token = accounts.create_token(form.name, form.role, form.expires_in_days)
    except CatalogError as exc:
        html = render_template("partials/users/token_form.html", token_form=values,
                               error=exc.message)
        return html, exc.status, {"HX-Retarget": "#token-form", "HX-Reswap": "outerHTML"}
    html = render_template("partials/users/tokens.html", created=row, clear_token=token,
                           clear_alerts=True, **_tokens_context())
    return html, 200, {"Cache-Control": "no-store"}


@bp.post("/tokens/<id:token_id>/revoke")
def revoke_token(token_id: int) -> Fragment:
    try:
        row = accounts.revoke_token(token_id)
    except CatalogError as exc:
        return _error(exc, "#tokens-error")
    html = render_template("partials/users/tokens.html", clear_alerts=True,
                           notice=f"Token {row.name} revoked: requests with it are refused.",
                           **_tokens_context())
    return html, 200, {}


def _tokens_context() -> dict[str, Any]:
    views = [TokenView(row, accounts.token_state(row)) for row in accounts.list_tokens()]
    return {"token_views": views, "token_form": NEW_TOKEN}


# Shared


def _error(exc: CatalogError, slot: str) -> Fragment:
    """The refusal, swapped into the error slot of the panel that caused it."""
    html = render_template("partials/shared/inline_error.html", message=exc.message)
    return html, exc.status, {"HX-Retarget": slot, "HX-Reswap": "innerHTML"}
