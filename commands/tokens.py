"""flask tokens create|revoke|list

The rules (validation, activity events) live in accounts.py, shared with the dashboard.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from commands.errors import fail_on_catalog_error
from services import accounts
from services.permissions import ROLES

tokens_cli = AppGroup("tokens", help="Manage API bearer tokens.")
DEFAULT_DAYS = 90  # as the dashboard's token form


@tokens_cli.command("create")
@click.option("--name", required=True, help="A unique label, e.g. the script's name.")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True,
              help="The least role the script needs; admin only when asked for.")
@click.option("--expires-in-days", type=click.IntRange(1, accounts.MAX_TOKEN_DAYS),
              default=DEFAULT_DAYS, show_default=True,
              help="Refuse the token after this many days.")
@click.option("--no-expiry", is_flag=True, help="A token that never expires.")
@fail_on_catalog_error
def create_token(name: str, role: str, expires_in_days: int, no_expiry: bool) -> None:
    """Mint a token (the dashboard's defaults: viewer, 90 days); it is printed once,
    alone on the last line."""
    _, token = accounts.create_token(name, role, None if no_expiry else expires_in_days)
    click.echo(f"token {name!r} ({role}) created; store it now, it is not shown again:")
    click.echo(token)


@tokens_cli.command("revoke")
@click.argument("name")
@fail_on_catalog_error
def revoke_token(name: str) -> None:
    """Revoke a token by name; requests with it are refused from now on."""
    accounts.revoke_token(name)
    click.echo(f"token {name!r} revoked")


@tokens_cli.command("list")
def list_tokens() -> None:
    """Names, roles and last use; never the tokens themselves."""
    for row in accounts.list_tokens():
        state = accounts.token_state(row)
        if state == "revoked":
            state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}"
        elif state == "active" and row.expires_at:
            state = f"active until {row.expires_at:%Y-%m-%d}"
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        click.echo(f"{row.name}\t{row.role}\t{state}\tlast used {used}")
