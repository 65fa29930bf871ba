"""Users and API tokens: the rules shared by the dashboard and the CLI.

Every function validates its input before it changes anything, raises
:class:`AccountError` (a :class:`catalog.CatalogError`, so the app answers 4xx) with a
sentence the caller can show as is, and commits the change together with its activity
event (actor: the request's user or token, ``cli`` outside a request). Passwords and
clear tokens never go into the log.

Safety rules: there is always at least one admin, and nobody deletes themselves or
changes their own role (callers pass the acting username in; the CLI passes none).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import activity
from catalog import CatalogError
from extensions import db
from models import ApiToken, User, utcnow
from permissions import ADMIN, ROLES

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,80}")
NAME_RULE = "1 to 80 letters, digits, '_', '.', '@' or '-'"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_TOKEN_DAYS = 3650
MAX_FAILED_LOGINS = 5  # in a row, per account
LOCKOUT_MINUTES = 15


class AccountError(CatalogError):
    """A refused change to a user or an API token; nothing was changed."""


# Users


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(func.lower(User.username))))


def find_user(username: str) -> User | None:
    return db.session.scalars(select(User).where(User.username == username)).first()


def get_user(username: str) -> User:
    """The user, or a 404."""
    user = find_user(username)
    if user is None:
        raise AccountError(f"no user named {username!r}", status=404, code="not_found")
    return user


def is_locked(user: User) -> bool:
    """Whether wrong passwords or codes have locked the account for now."""
    return user.locked_until is not None and user.locked_until > utcnow()


def count_failed_login(user: User | None) -> None:
    """MAX_FAILED_LOGINS wrong passwords or codes in a row lock the account for
    LOCKOUT_MINUTES (committed by the caller, with the failure's activity event)."""
    if user is None:
        return
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.failed_logins = 0
        user.locked_until = utcnow() + timedelta(minutes=LOCKOUT_MINUTES)


def create_user(username: str, role: str, password: str) -> User:
    """A new user with a role and a password."""
    username = _valid_name(username, "username")
    _check_role(role)
    check_password(password)
    if find_user(username) is not None:
        raise AccountError(f"user {username!r} exists; pick another username", status=409,
                           code="conflict")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    _commit("user.create", username, f"role {role}")
    return user


def set_role(username: str, role: str, *, acting: str | None = None) -> User:
    """Change a user's role; never the acting user's own, never the last admin's."""
    _check_role(role)
    user = get_user(username)
    if acting is not None and user.username == acting:
        raise AccountError("you cannot change your own role; ask another admin",
                           status=403, code="forbidden")
    if user.role == role:
        return user
    if user.role == ADMIN:
        _keep_an_admin(user, "demote")
    before, user.role = user.role, role
    _commit("user.role", username, f"{before} -> {role}")
    return user


def reset_password(username: str, password: str) -> User:
    """Set a new password; the user's sessions end."""
    check_password(password)
    user = get_user(username)
    user.set_password(password)
    user.session_version += 1
    _commit("user.password", username, "password reset; sessions ended")
    return user


def unlock(username: str) -> User:
    """Lift a lock-out after too many wrong passwords."""
    user = get_user(username)
    user.failed_logins, user.locked_until = 0, None
    _commit("user.unlock", username)
    return user


def end_sessions(username: str) -> User:
    """Log a user out everywhere: every session cookie of theirs stops working."""
    user = get_user(username)
    user.session_version += 1
    _commit("user.sessions", username)
    return user


def reset_totp(username: str) -> User:
    """Remove the user's second factor; they log in with the password alone."""
    user = get_user(username)
    user.totp_secret, user.totp_last_step = None, None
    _commit("user.totp", username, "second factor removed")
    return user


def delete_user(username: str, *, acting: str | None = None) -> None:
    """Delete a user; never the acting user, never the last admin."""
    user = get_user(username)
    if acting is not None and user.username == acting:
        raise AccountError("you cannot delete yourself; ask another admin", status=403,
                           code="forbidden")
    if user.role == ADMIN:
        _keep_an_admin(user, "delete")
    db.session.delete(user)
    _commit("user.delete", username, f"role {user.role}")


def check_password(password: str) -> None:
    """Refuse a password that is too short (or absurdly long)."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")


def _keep_an_admin(user: User, verb: str) -> None:
    """Refuse to leave zero admins. The other admins' rows are locked (PostgreSQL), so two
    admins demoting each other at once cannot both succeed."""
    others = db.session.scalars(
        select(User.id).where(User.role == ADMIN, User.id != user.id).with_for_update()).all()
    if not others:
        raise AccountError(f"cannot {verb} {user.username!r}: it is the last admin; make "
                           "another user admin first", status=409, code="last_admin")


# API tokens


def list_tokens() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(func.lower(ApiToken.name))))


def token_state(row: ApiToken) -> str:
    """active, expired or revoked."""
    if row.revoked_at is not None:
        return "revoked"
    return "active" if row.usable else "expired"


def create_token(name: str, role: str, expires_in_days: int | None = None
                 ) -> tuple[ApiToken, str]:
    """A new token row and the clear token, which the caller shows once; only its SHA-256
    is stored."""
    name = _valid_name(name, "token name")
    _check_role(role)
    expires_at = _expiry(expires_in_days)
    if db.session.scalars(select(ApiToken.id).where(ApiToken.name == name)).first():
        raise AccountError(f"a token named {name!r} exists (revoked tokens keep their "
                           "names); pick another name", status=409, code="conflict")
    row, token = ApiToken.mint(name, role, expires_at)
    db.session.add(row)
    expiry = f"until {expires_at:%Y-%m-%d}" if expires_at else "no expiry"
    _commit("token.create", name, f"role {role}, {expiry}")
    return row, token


def revoke_token(ref: str | int) -> ApiToken:
    """Revoke a token by id (an int) or name; requests with it are refused from now on.
    Revoking a revoked token changes nothing."""
    row = _find_token(ref)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        _commit("token.revoke", row.name)
    return row


def _find_token(ref: str | int) -> ApiToken:
    if isinstance(ref, int):
        row = db.session.get(ApiToken, ref) if 0 < ref < 2**31 else None
    else:
        row = db.session.scalars(select(ApiToken).where(ApiToken.name == ref)).first()
    if row is None:
        raise AccountError(f"no token {ref!r}" if isinstance(ref, int)
                           else f"no token named {ref!r}", status=404, code="not_found")
    return row


def _expiry(days: int | None) -> datetime | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
        raise AccountError(f"the expiry must be a whole number of days from 1 to "
                           f"{MAX_TOKEN_DAYS}, or none")
    return utcnow() + timedelta(days=days)


# Shared


def _valid_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or set(name) == {"."}:
        raise AccountError(f"the {what} must be {NAME_RULE} (got {name!r})")
    return name


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")


def _commit(action: str, target: str, detail: str | None = None) -> None:
    """Commit the pending change with its activity event, or neither."""
    try:
        activity.record(action, target, detail=detail)
    except IntegrityError as exc:  # a concurrent request took the same name
        db.session.rollback()
        raise AccountError(f"{target!r} was just taken by someone else; pick another name",
                           status=409, code="conflict") from exc
