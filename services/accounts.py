"""Users, logins and API tokens: the rules shared by the dashboard and the CLI.

Every function validates its input before it changes anything, raises
:class:`AccountError` (a :class:`catalog.CatalogError`, so the app answers 4xx) with a
sentence the caller can show as is, and commits the change together with its activity
event (actor: the request's user or token, ``cli`` outside a request). A refusal rolls
back whatever was pending, so callers never do; the one thing a refusal keeps is its own
bookkeeping (a wrong password is counted and logged). Passwords, codes and clear tokens
never go into the log.

Safety rules: there is always at least one admin, and nobody deletes themselves or
changes their own role (callers pass the acting username in; the CLI passes none).
Wrong passwords and codes lock an account for a while, and too many failed logins from
one address refuse that address for a while, whatever the usernames tried.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn, ParamSpec, TypeVar, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from services import activity, totp
from services.errors import CatalogError
from services.extensions import db
from services.models import ActivityEvent, ApiToken, User, utcnow
from services.permissions import ADMIN, ROLES

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,80}")
NAME_RULE = "1 to 80 letters, digits, '_', '.', '@' or '-'"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_TOKEN_DAYS = 3650
MAX_FAILED_LOGINS = 5  # in a row, per account
LOCKOUT_MINUTES = 15
MAX_FAILURES_PER_ADDRESS = 20  # failed logins per LOCKOUT_MINUTES, whatever the usernames

P = ParamSpec("P")
R = TypeVar("R")


# Refused tokens one address may send per activity.REPEAT_WINDOW before getting 429s.
REFUSED_TOKENS_PER_WINDOW = 30
# A token's last use is noted to the minute: a script polling the API many times a second
# would otherwise make every read a write (and on SQLite, wait for every other writer).
LAST_USED_RESOLUTION = timedelta(minutes=1)


class AccountError(CatalogError):
    """A refused change or login; nothing was changed but the refusal's own record (a
    wrong password counted and logged)."""


def _refusal_rolls_back(change: Callable[P, R]) -> Callable[P, R]:
    """Roll back what ``change`` left pending when it raises, whatever the reason: a
    refusal changes nothing, and releases the rows it locked (see _keep_an_admin)."""

    @functools.wraps(change)
    def owning_its_transaction(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return change(*args, **kwargs)
        except Exception:
            db.session.rollback()
            raise

    return owning_its_transaction


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


def find_user_by_id(user_id: int) -> User | None:
    return db.session.get(User, user_id)


def get_user_by_id(user_id: int) -> User:
    """The user, or a 404 (for the dashboard, whose rows are named by id)."""
    user = find_user_by_id(user_id)
    if user is None:
        raise AccountError(f"no user with id {user_id}; reload the page", status=404,
                           code="not_found")
    return user


def is_locked(user: User) -> bool:
    """Whether wrong passwords or codes have locked the account for now."""
    return user.locked_until is not None and user.locked_until > utcnow()


def count_failed_login(user: User | None) -> None:
    """MAX_FAILED_LOGINS wrong passwords or codes in a row lock the account for
    LOCKOUT_MINUTES (committed with the failure's activity event)."""
    if user is None:
        return
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.failed_logins = 0
        user.locked_until = utcnow() + timedelta(minutes=LOCKOUT_MINUTES)


@_refusal_rolls_back
def create_user(username: str, role: str, password: str) -> User:
    """A new user with a role and a password."""
    username = check_name(username, "username")
    check_role(role)
    check_password(password)
    if find_user(username) is not None:
        raise AccountError(f"user {username!r} exists; pick another username", status=409,
                           code="conflict")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    _commit("user.create", username, f"role {role}")
    return user


@_refusal_rolls_back
def set_role(username: str, role: str, *, acting: str | None = None) -> User:
    """Change a user's role; never the acting user's own, never the last admin's."""
    check_role(role)
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


@_refusal_rolls_back
def reset_password(username: str, password: str) -> User:
    """Set a new password; the user's sessions end."""
    check_password(password)
    user = get_user(username)
    user.set_password(password)
    user.session_version += 1
    _commit("user.password", username, "password reset; sessions ended")
    return user


@_refusal_rolls_back
def unlock(username: str) -> User:
    """Lift a lock-out after too many wrong passwords."""
    user = get_user(username)
    user.failed_logins, user.locked_until = 0, None
    _commit("user.unlock", username)
    return user


@_refusal_rolls_back
def end_sessions(username: str) -> User:
    """Log a user out everywhere: every session cookie of theirs stops working."""
    user = get_user(username)
    user.session_version += 1
    _commit("user.sessions", username)
    return user


@_refusal_rolls_back
def reset_totp(username: str) -> User:
    """Remove the user's second factor; they log in with the password alone."""
    user = get_user(username)
    user.totp_secret, user.totp_last_step = None, None
    _commit("user.totp", username, "second factor removed")
    return user


@_refusal_rolls_back
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


# Logins: the password, then the second factor's code when the user has one


@_refusal_rolls_back
def password_login(username: str, password: str, address: str | None) -> User:
    """The user whose password this is, if nothing refuses the login; the caller then asks
    for their code (``has_totp``) or completes the login. Refusals are logged: 429 too many
    failures from ``address``, 423 a locked account, 401 a wrong username or password
    (counted towards the lock-out)."""
    _refuse_busy_address(address, username)
    user = find_user(username)
    if user is not None:
        _refuse_locked_login(user)
    if user is None or not user.check_password(password):
        _fail_login(user, username, "Wrong username or password.")
    return user


@_refusal_rolls_back
def code_login(user: User, code: str, address: str | None) -> None:
    """The second step: ``code`` from the user's app, usable once. Refusals as for
    :func:`password_login`; a wrong code counts like a wrong password."""
    _refuse_busy_address(address, user.username)
    _refuse_locked_login(user)
    step = totp.accepted_step(user.totp_secret or "", code, user.totp_last_step)
    if step is None or not _claim_step(user, step):
        _fail_login(user, user.username, "Wrong code, or a code already used: enter the "
                    "code your app shows now.", detail="wrong second-factor code")


def complete_login(user: User, detail: str | None = None) -> None:
    """The login went through: the failures in a row start again from zero."""
    user.failed_logins, user.locked_until = 0, None
    activity.record("login", user.username, detail=detail, actor=user.username)


def _refuse_busy_address(address: str | None, name: str | None) -> None:
    """429 after too many failed logins from ``address``, counted from the activity log."""
    since = utcnow() - timedelta(minutes=LOCKOUT_MINUTES)
    failures = db.session.scalar(select(func.count(ActivityEvent.id)).where(
        ActivityEvent.action == "login", ActivityEvent.outcome == "failed",
        ActivityEvent.source == address, ActivityEvent.at > since))
    assert failures is not None  # COUNT always returns a row
    if failures >= MAX_FAILURES_PER_ADDRESS:
        activity.record("login", name, outcome="refused", actor=name or "anonymous",
                        detail="rate limited")
        raise AccountError("Too many failed logins from your address; wait a few minutes.",
                           status=429, code="rate_limited")


def _refuse_locked_login(user: User) -> None:
    if is_locked(user):
        message = (f"Too many failed logins: this account is locked until "
                   f"{user.locked_until:%H:%M} UTC.")
        activity.record("login", user.username, outcome="refused", actor=user.username,
                        detail="account locked")
        raise AccountError(message, status=423, code="locked")


def _fail_login(user: User | None, name: str, message: str,
                detail: str | None = None) -> NoReturn:
    count_failed_login(user)
    activity.record("login", name, outcome="failed", actor=name or "anonymous",
                    detail=detail)
    raise AccountError(message, status=401, code="unauthorized")


def _claim_step(user: User, step: int) -> bool:
    """Record ``step`` as used, atomically: of two requests with one code, only one wins."""
    claimed = cast("CursorResult[Any]", db.session.execute(  # what an UPDATE returns
        update(User)
        .where(User.id == user.id,
               or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)))
    return claimed.rowcount == 1


# The user's own account: what changes it asks for the current password (and, to turn the
# second factor off, a current code too), counted like a login so that a session left
# open cannot be used to guess them.


@_refusal_rolls_back
def change_own_password(user: User, current: str, new: str) -> None:
    """A new password for ``user``, who gave their current one; their sessions end (the
    caller logs the current one in again, under the new session version)."""
    check_password(new)
    _confirm(user, "user.password", current)
    user.set_password(new)
    user.session_version += 1
    activity.record("user.password", user.username)


@_refusal_rolls_back
def enable_totp(user: User, secret: str, code: str) -> None:
    """Turn the second factor on with ``secret``, once ``code`` shows the user's app has
    it. Nothing is stored before that."""
    if user.has_totp:
        raise AccountError("The second factor is already on: turn it off first to set up "
                           "a new one.", status=409, code="conflict")
    step = totp.accepted_step(secret, code, None)
    if step is None:
        raise AccountError("Wrong code: check that your phone's clock is right and enter "
                           "the code the app shows now.")
    user.totp_secret, user.totp_last_step = secret, step
    activity.record("user.totp", user.username, detail="enabled")


@_refusal_rolls_back
def disable_totp(user: User, password: str, code: str) -> None:
    """Turn the user's own second factor off: their password and a current code."""
    _confirm(user, "user.totp", password, code)
    user.totp_secret, user.totp_last_step = None, None
    activity.record("user.totp", user.username, detail="disabled")


def _confirm(user: User, action: str, password: str, code: str | None = None) -> None:
    """Refuse unless the password (and the code, when one is given) are right, recording
    the refusal under ``action``; a wrong answer counts as a failed login."""
    if is_locked(user):
        message = (f"Too many wrong passwords or codes: this account is locked until "
                   f"{user.locked_until:%H:%M} UTC.")
        activity.record(action, user.username, outcome="refused", detail="account locked")
        raise AccountError(message, status=423, code="locked")
    right = user.check_password(password)
    if code is not None:
        right = right and totp.accepted_step(
            user.totp_secret or "", code, user.totp_last_step) is not None
    if right:
        user.failed_logins = 0  # "in a row": saved with the change itself
        return
    count_failed_login(user)
    what = "password" if code is None else "password or code"
    activity.record(action, user.username, outcome="failed", detail=f"wrong {what}")
    raise AccountError(f"Wrong {what}: nothing was changed." + (
        "" if code is None else " Each code works once: wait for the next one."),
        code="wrong_password")


# API tokens


def list_tokens() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(func.lower(ApiToken.name))))


def token_state(row: ApiToken) -> str:
    """active, expired or revoked."""
    if row.revoked_at is not None:
        return "revoked"
    return "active" if row.usable else "expired"


@_refusal_rolls_back
def create_token(name: str, role: str, expires_in_days: int | None = None
                 ) -> tuple[ApiToken, str]:
    """A new token row and the clear token, which the caller shows once; only its SHA-256
    is stored."""
    name = check_name(name, "token name")
    check_role(role)
    expires_at = _expiry(expires_in_days)
    if db.session.scalars(select(ApiToken.id).where(ApiToken.name == name)).first():
        raise AccountError(f"a token named {name!r} exists (revoked tokens keep their "
                           "names); pick another name", status=409, code="conflict")
    row, token = ApiToken.mint(name, role, expires_at)
    db.session.add(row)
    expiry = f"until {expires_at:%Y-%m-%d}" if expires_at else "no expiry"
    _commit("token.create", name, f"role {role}, {expiry}")
    return row, token


@_refusal_rolls_back
def revoke_token(ref: str | int) -> ApiToken:
    """Revoke a token by id (an int) or name; requests with it are refused from now on.
    Revoking a revoked token changes nothing."""
    row = _find_token(ref)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        _commit("token.revoke", row.name)
    return row


@_refusal_rolls_back
def authenticate_token(token: str, call: str) -> ApiToken | None:
    """The usable token row of a bearer ``token``, its use noted (to the minute: see
    LAST_USED_RESOLUTION); None for an unknown, revoked or expired one, the refusal logged
    (``call``: "METHOD /path", what was tried).
    Anyone can send a bogus token, as often as they like: repeats from one address are
    counted on one event, and the call is kept short and printable."""
    row = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(token))).first()
    if row is None or not row.usable:
        reason = "unknown token" if row is None else "revoked" if row.revoked_at else "expired"
        times = activity.record_repeatable(
            "token.refused", reason, activity.printable(call), outcome="refused",
            actor=f"token:{row.name}" if row else "anonymous")
        if times > REFUSED_TOKENS_PER_WINDOW:
            minutes = int(activity.REPEAT_WINDOW.total_seconds() // 60)
            raise AccountError(f"too many refused tokens from this address ({times} within "
                               f"{minutes} minutes): wait, and send a valid token",
                               status=429, code="rate_limited")
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        db.session.commit()
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


def check_name(name: str, what: str) -> str:
    """``name`` if it may name a user or a token (``what``: how to call it), else refuse."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or set(name) == {"."}:
        raise AccountError(f"the {what} must be {NAME_RULE} (got {name!r})")
    return name


def check_role(role: str) -> None:
    """Refuse a role that does not exist."""
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
