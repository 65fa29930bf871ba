"""flask slots list|drop: the replication slots change capture keeps on the protected
database, and dropping one that holds WAL nothing will read."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from commands.errors import fail_on_catalog_error
from services import capture_slots
from services.formatting import filesize

slots_cli = AppGroup("slots", help="List and drop the replication slots of change capture.")


@slots_cli.command("list")
@fail_on_catalog_error
def list_() -> None:
    """The app's slots: name, database, live or stale, backup, WAL kept, and why."""
    views = capture_slots.slots_report()
    for view in views:
        in_use = " (in use)" if view.active else ""
        click.echo(f"{view.name}\t{view.database}\t{view.state}{in_use}\t"
                   f"{view.backup_id or '-'}\t{filesize(view.retained_wal_bytes)}\t{view.reason}")
    click.echo(f"{len(views)} slots, {sum(1 for view in views if not view.live)} stale")


@slots_cli.command("drop")
@click.argument("name")
@click.option("--force", is_flag=True, help="Drop a live slot too: its chain ends, and the "
              "next incremental backup starts a new chain with a full backup.")
@fail_on_catalog_error
def drop(name: str, force: bool) -> None:
    """Drop one slot, releasing the WAL it keeps; a live one needs --force."""
    view = capture_slots.drop(name, actor="cli", force=force)
    click.echo(f"dropped {view.name} ({view.state}), which kept "
               f"{filesize(view.retained_wal_bytes)} of WAL")
