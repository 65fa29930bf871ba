"""flask users create-admin"""

from __future__ import annotations

import os
import sys

import click
from flask.cli import AppGroup
from sqlalchemy import select

from extensions import db
from models import User
from permissions import ADMIN, ROLES

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
def create_admin(username: str, password_stdin: bool, update: bool) -> None:
    """Create an admin user (password from ADMIN_PASSWORD, stdin or a prompt)."""
    _save_user(username, ADMIN, password_stdin, update)


@users_cli.command("create")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--update", is_flag=True, help="Reset password and role if the user exists.")
def create_user(username: str, role: str, password_stdin: bool, update: bool) -> None:
    """Create a user with a role (password from ADMIN_PASSWORD, stdin or a prompt)."""
    _save_user(username, role, password_stdin, update)


def _save_user(username: str, role: str, password_stdin: bool, update: bool) -> None:
    password = _read_password(password_stdin)
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    user = db.session.scalars(select(User).where(User.username == username)).first()
    if user is not None and not update:
        raise click.ClickException(f"user {username!r} exists; pass --update to reset it")
    user = user or User(username=username)
    user.role = role
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"{role} user {username!r} ready")


@users_cli.command("end-sessions")
@click.argument("username")
def end_sessions(username: str) -> None:
    """Log a user out everywhere (every dashboard session of theirs stops working)."""
    user = db.session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise click.ClickException(f"no user named {username!r}")
    user.session_version += 1
    db.session.commit()
    click.echo(f"every session of {username!r} has ended")
