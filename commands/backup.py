"""flask backup create|list|show|delete|rescan: the API's backup operations for operators
and cron."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import click
from flask.cli import AppGroup
from pydantic import ValidationError

from blueprints.api.schemas import RestoreRequest
from blueprints.api.serializers import backup_json, dry_run_json
from blueprints.errors import describe_validation_error
from commands.errors import fail_on_catalog_error
from services import rescan as rescans
from services import restores, verification
from services.backups import create_backup, delete_backup, get_backup, job_status, list_backups
from services.extensions import db
from services.formatting import filesize
from services.models import ACTIVE_STATUSES, BACKUP_TYPES, STATUSES, VERIFY_LEVELS

backup_cli = AppGroup("backup", help="Create, list, inspect and delete backups.")


def _wait(describe: str, active: Callable[[], bool], timeout: int) -> None:
    """Poll until ``active()`` turns false; a ClickException after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while active():
        if time.monotonic() > deadline:
            raise click.ClickException(f"{describe} still running after {timeout}s")
        time.sleep(1)
        db.session.expire_all()


WAIT_OPTIONS = (
    click.option("--wait", is_flag=True, help="Wait for the job; exit 1 if it fails."),
    click.option("--timeout", default=24 * 3600, show_default=True, help="Seconds to --wait."),
)


def _wait_options(func):
    for option in reversed(WAIT_OPTIONS):
        func = option(func)
    return func


@backup_cli.command("create")
@click.option("--type", "kind", type=click.Choice(BACKUP_TYPES), default="full",
              show_default=True)
@click.option("--compress/--no-compress", default=True, show_default=True)
@_wait_options
@fail_on_catalog_error
def create(kind: str, compress: bool, wait: bool, timeout: int) -> None:
    """Queue a backup (a worker must be running) and print its id."""
    backup = create_backup(kind, compress=compress)
    click.echo(f"queued {backup.id} (job {backup.job_id})")
    if not wait:
        return
    _wait(backup.id, lambda: backup.is_active, timeout)
    if backup.status != "completed":
        raise click.ClickException(f"{backup.id} failed: {backup.error}")
    click.echo(f"completed {backup.id}: {backup.filename}, {filesize(backup.size)}")


@backup_cli.command("verify")
@click.argument("backup_id")
@click.option("--level", type=click.Choice(VERIFY_LEVELS), default="integrity",
              show_default=True, help="restore: a real test restore into a scratch database.")
@_wait_options
@fail_on_catalog_error
def verify(backup_id: str, level: str, wait: bool, timeout: int) -> None:
    """Queue a verification; with --wait, print the checks and exit 1 if invalid."""
    job_id = verification.start_verification(backup_id, level)
    click.echo(f"queued {level} verification of {backup_id} (job {job_id})")
    if not wait:
        return
    _wait(job_id, lambda: job_status(job_id).status in ACTIVE_STATUSES, timeout)
    backup = get_backup(backup_id)
    for check in (backup.verification_result or {}).get("checks", []):
        click.echo(f"{'ok  ' if check['ok'] else 'FAIL'} {check['name']}: {check['detail']}")
    if backup.verification != "valid":
        raise click.ClickException(f"{backup_id} is {backup.verification}")
    click.echo(f"{backup_id} is valid ({level})")


@backup_cli.command("restore")
@click.argument("backup_id", required=False)
@click.option("--point-in-time", help="Restore the state at this moment (RFC 3339 with a "
              "zone, e.g. 2026-12-07T10:31:07Z): the newest chain of backups that reaches it "
              "(or BACKUP_ID's chain), replayed up to it.")
@click.option("--dry-run", is_flag=True, help="Analyse only; print the report as JSON.")
@click.option("--rehearse", is_flag=True, help="With --dry-run: also restore into a scratch "
              "database, check it and drop it.")
@click.option("--target-database", help="Restore into this new database.")
@click.option("--confirm-data-loss", is_flag=True,
              help="Restore over the protected database (a safety backup is taken first).")
@click.option("--create-roles", is_flag=True, help="First create the roles the backup needs "
              "and the server lacks, from the roles saved with the backup.")
@_wait_options
@fail_on_catalog_error
def restore(backup_id: str | None, point_in_time: str | None, dry_run: bool, rehearse: bool,
            target_database: str | None, confirm_data_loss: bool, create_roles: bool,
            wait: bool, timeout: int) -> None:
    """Dry-run, or restore a backup (or the state at a point in time) into a new database
    or over the protected one."""
    try:
        request = RestoreRequest(backupId=backup_id, pointInTime=point_in_time, dryRun=dry_run,
                                 rehearse=rehearse, targetDatabase=target_database,
                                 confirmDataLoss=confirm_data_loss, createRoles=create_roles)
    except ValidationError as exc:
        raise click.UsageError(describe_validation_error(exc)) from None
    moment = request.moment
    if dry_run:
        analysis = restores.dry_run(backup_id, target_database, point_in_time=moment)
        click.echo(json.dumps(dry_run_json(analysis), indent=2))
        if not rehearse:
            return
    row = restores.start_restore(backup_id, "rehearsal" if rehearse else request.mode,
                                 target_database, create_roles=create_roles,
                                 point_in_time=moment)
    click.echo(f"queued {row.mode} restore {row.id} of {row.backup_id} into "
               f"{row.target_database}" + (f" at {point_in_time}" if moment else ""))
    if not wait:
        return
    _wait(row.id, lambda: row.is_active, timeout)
    if row.status != "completed":
        raise click.ClickException(f"{row.id} failed: {row.error}")
    click.echo(f"completed {row.id}: {row.target_database} matches the backup's manifest")


@backup_cli.command("restores")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200))
def restores_(limit: int) -> None:
    """Recent restores, newest first."""
    for row in restores.list_restores(limit):
        click.echo(f"{row.id}\t{row.mode}\t{row.target_database}\t{row.status}\t"
                   f"{row.backup_id}")


@backup_cli.command("list")
@click.option("--type", "kind", type=click.Choice(BACKUP_TYPES))
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 200))
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
def list_(kind: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Backups, newest first."""
    page = list_backups(kind, status, 1, limit)
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
@fail_on_catalog_error
def show(backup_id: str) -> None:
    """One backup as JSON, with its table list."""
    click.echo(json.dumps(backup_json(get_backup(backup_id), detail=True), indent=2))


@backup_cli.command("delete")
@click.argument("backup_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@fail_on_catalog_error
def delete(backup_id: str, yes: bool) -> None:
    """Delete a backup's artifact, manifest and catalog entry."""
    get_backup(backup_id)
    if not yes:
        click.confirm(f"Delete {backup_id} and its files for good?", abort=True)
    delete_backup(backup_id, actor="cli")
    click.echo(f"deleted {backup_id}")


@backup_cli.command("rescan")
@click.option("--destination", help="Only this destination (default: local and every "
              "configured one).")
@click.option("--accept-foreign", is_flag=True, help="Also import manifests that are "
              "unsigned or signed with another key, once their artifact's size and SHA-256 "
              "match.")
@click.option("--quick", is_flag=True, help="Check the artifacts' sizes only, without "
              "reading them whole for their SHA-256.")
@fail_on_catalog_error
def rescan(destination: str | None, accept_foreign: bool, quick: bool) -> None:
    """Rebuild the catalog from the manifests found on destinations; exit 1 when a
    manifest was tampered with or forged."""
    report = rescans.rescan(destination, accept_foreign, quick, actor="cli")
    for item in report.skipped:
        where = f"{item.destination}/{item.file}" if item.file else item.destination
        click.echo(f"skipped {where} ({item.reason}): {item.detail}")
    for backup_id in report.imported:
        click.echo(f"imported {backup_id}")
    for where in report.copies_added:
        click.echo(f"copy added {where}")
    for where in report.accepted_foreign:
        click.echo(f"accepted without this install's signature: {where}")
    click.echo(f"{', '.join(report.destinations)}: {report.found} manifests, "
               f"{len(report.imported)} backups imported, {len(report.copies_added)} copies "
               f"added, {report.already_known} already known, {len(report.skipped)} skipped")
    if report.alarming:
        raise click.ClickException(f"{len(report.alarming)} manifests were tampered with or "
                                   "forged: they were not imported")
