"""flask users create-admin|create|list|set-role|unlock|reset-totp|end-sessions|delete

The rules (validation, the last admin, activity events) live in accounts.py, shared with
the dashboard; these commands act as ``cli``.
"""

from __future__ import annotations

import os
import sys

import click
from flask.cli import AppGroup

from commands.errors import fail_on_catalog_error
from services import accounts
from services.permissions import ADMIN, ROLES

users_cli = AppGroup("users", help="Manage dashboard users.")


def _read_password(from_stdin: bool) -> str:
    """From ADMIN_PASSWORD, stdin or a prompt: never from argv, where `ps` would show it."""
    if os.environ.get("ADMIN_PASSWORD"):
        return os.environ["ADMIN_PASSWORD"]
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_cli.command("create-admin")
@click.option("--username", default="admin", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--update", is_flag=True, help="Reset the password if the user exists.")
@fail_on_catalog_error
def create_admin(username: str, password_stdin: bool, update: bool) -> None:
    """Create an admin user (password from ADMIN_PASSWORD, stdin or a prompt)."""
    _save_user(username, ADMIN, password_stdin, update)


@users_cli.command("create")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--update", is_flag=True, help="Reset password and role if the user exists.")
@fail_on_catalog_error
def create_user(username: str, role: str, password_stdin: bool, update: bool) -> None:
    """Create a user with a role (password from ADMIN_PASSWORD, stdin or a prompt)."""
    _save_user(username, role, password_stdin, update)


def _save_user(username: str, role: str, password_stdin: bool, update: bool) -> None:
    password = _read_password(password_stdin)
    accounts.check_password(password)
    if accounts.find_user(username) is None:
        accounts.create_user(username, role, password)
    elif update:  # the role first: a refused demotion leaves the password as it was
        accounts.set_role(username, role)
        accounts.reset_password(username, password)
    else:
        raise click.ClickException(f"user {username!r} exists; pass --update to reset it")
    click.echo(f"{role} user {username!r} ready")


@users_cli.command("list")
def list_users() -> None:
    """Usernames, roles, second factor and lock-out; never passwords."""
    for user in accounts.list_users():
        locked = (f"locked until {user.locked_until:%Y-%m-%d %H:%M}"
                  if accounts.is_locked(user) else "not locked")
        totp = "2FA on" if user.has_totp else "2FA off"
        click.echo(f"{user.username}\t{user.role}\t{totp}\t{locked}\t"
                   f"created {user.created_at:%Y-%m-%d %H:%M}")


@users_cli.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@fail_on_catalog_error
def set_role(username: str, role: str) -> None:
    """Change a user's role (the last admin stays admin)."""
    accounts.set_role(username, role)
    click.echo(f"{username!r} is now {role}")


@users_cli.command("unlock")
@click.argument("username")
@fail_on_catalog_error
def unlock(username: str) -> None:
    """Lift a lock-out after too many wrong passwords."""
    accounts.unlock(username)
    click.echo(f"{username!r} is unlocked")


@users_cli.command("reset-totp")
@click.argument("username")
@fail_on_catalog_error
def reset_totp(username: str) -> None:
    """Remove a user's second factor (e.g. a lost phone); they log in with the password."""
    accounts.reset_totp(username)
    click.echo(f"the second factor of {username!r} is removed")


@users_cli.command("end-sessions")
@click.argument("username")
@fail_on_catalog_error
def end_sessions(username: str) -> None:
    """Log a user out everywhere (every dashboard session of theirs stops working)."""
    accounts.end_sessions(username)
    click.echo(f"every session of {username!r} has ended")


@users_cli.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@fail_on_catalog_error
def delete(username: str, yes: bool) -> None:
    """Delete a user (never the last admin); their activity stays in the log."""
    accounts.get_user(username)
    if not yes:
        click.confirm(f"Delete the user {username!r}?", abort=True)
    accounts.delete_user(username)
    click.echo(f"user {username!r} deleted")
