"""flask tokens create|revoke|list"""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup
from sqlalchemy import select

from extensions import db
from models import ApiToken, utcnow
from permissions import ROLES

tokens_cli = AppGroup("tokens", help="Manage API bearer tokens.")


@tokens_cli.command("create")
@click.option("--name", required=True, help="A unique label, e.g. the script's name.")
@click.option("--role", type=click.Choice(ROLES), default="admin", show_default=True)
@click.option("--expires-in-days", type=click.IntRange(1, 3650),
              help="Refuse the token after this many days (default: never).")
def create_token(name: str, role: str, expires_in_days: int | None) -> None:
    """Mint a token; it is printed once, alone on the last line."""
    if db.session.scalars(select(ApiToken).where(ApiToken.name == name)).first():
        raise click.ClickException(f"a token named {name!r} exists; revoke it or pick another")
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    row, token = ApiToken.mint(name, role, expires_at)
    db.session.add(row)
    db.session.commit()
    click.echo(f"token {name!r} ({role}) created; store it now, it is not shown again:")
    click.echo(token)


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_token(name: str) -> None:
    """Revoke a token by name; requests with it are refused from now on."""
    row = db.session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None:
        raise click.ClickException(f"no token named {name!r}")
    row.revoked_at = row.revoked_at or utcnow()
    db.session.commit()
    click.echo(f"token {name!r} revoked")


@tokens_cli.command("list")
def list_tokens() -> None:
    """Names, roles and last use; never the tokens themselves."""
    for row in db.session.scalars(select(ApiToken).order_by(ApiToken.name)):
        state = (f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at
                 else "expired" if not row.usable
                 else f"active until {row.expires_at:%Y-%m-%d}" if row.expires_at
                 else "active")
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        click.echo(f"{row.name}\t{row.role}\t{state}\tlast used {used}")
