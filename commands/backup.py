"""flask backup create|list|show|delete: the API's backup operations for operators and cron."""

from __future__ import annotations

import json
import time

import click
from flask.cli import AppGroup

import catalog
from blueprints.api import backup_json
from extensions import db
from formatting import filesize
from models import BACKUP_TYPES, STATUSES

backup_cli = AppGroup("backup", help="Create, list, inspect and delete backups.")


def _fail_on_catalog_error(func):
    """Show CatalogError as a one-line CLI error with a non-zero exit code."""

    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except catalog.CatalogError as exc:
            raise click.ClickException(exc.message) from None

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@backup_cli.command("create")
@click.option("--type", "kind", type=click.Choice(BACKUP_TYPES), default="full",
              show_default=True)
@click.option("--compress/--no-compress", default=True, show_default=True)
@click.option("--wait", is_flag=True, help="Wait for the job; exit 1 if the backup fails.")
@click.option("--timeout", default=24 * 3600, show_default=True, help="Seconds to --wait.")
@_fail_on_catalog_error
def create(kind: str, compress: bool, wait: bool, timeout: int) -> None:
    """Queue a backup (a worker must be running) and print its id."""
    backup = catalog.create_backup(kind, compress=compress)
    click.echo(f"queued {backup.id} (job {backup.job_id})")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while backup.is_active:
        if time.monotonic() > deadline:
            raise click.ClickException(f"{backup.id} still {backup.status} after {timeout}s")
        time.sleep(1)
        db.session.refresh(backup)
    if backup.status != "completed":
        raise click.ClickException(f"{backup.id} failed: {backup.error}")
    click.echo(f"completed {backup.id}: {backup.filename}, {filesize(backup.size)}")


@backup_cli.command("list")
@click.option("--type", "kind", type=click.Choice(BACKUP_TYPES))
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 200))
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
def list_(kind: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Backups, newest first."""
    page = catalog.list_backups(kind, status, 1, limit)
    if as_json:
        backups = [backup_json(backup) for backup in page.backups]
        click.echo(json.dumps({"backups": backups, "total": page.total,
                               "totalSize": page.total_size}, indent=2))
        return
    for backup in page.backups:
        click.echo(f"{backup.id}\t{backup.type}\t{backup.status}\t{filesize(backup.size)}")
    click.echo(f"{page.total} backups, {filesize(page.total_size)}")


@backup_cli.command("show")
@click.argument("backup_id")
@_fail_on_catalog_error
def show(backup_id: str) -> None:
    """One backup as JSON, with its table list."""
    click.echo(json.dumps(backup_json(catalog.get_backup(backup_id), detail=True), indent=2))


@backup_cli.command("delete")
@click.argument("backup_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_fail_on_catalog_error
def delete(backup_id: str, yes: bool) -> None:
    """Delete a backup's artifact, manifest and catalog entry."""
    catalog.get_backup(backup_id)
    if not yes:
        click.confirm(f"Delete {backup_id} and its files for good?", abort=True)
    catalog.delete_backup(backup_id)
    click.echo(f"deleted {backup_id}")
