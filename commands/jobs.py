"""flask jobs list|show: the app's jobs as GET /api/system/jobs shows them, beside rq info."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import AppGroup

from blueprints.api.serializers import job_json
from commands.errors import fail_on_catalog_error
from services.backups import job_status
from services.job_listing import DEFAULT_LIMIT, MAX_LIMIT, RQ_STATUSES, list_jobs

jobs_cli = AppGroup("jobs", help="Inspect the app's jobs in RQ (what rq info counts).")

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


@jobs_cli.command("list")
@click.option("--status", type=click.Choice(RQ_STATUSES), help="Only jobs in this RQ status.")
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True,
              type=click.IntRange(1, MAX_LIMIT))
@JSON_OPTION
@fail_on_catalog_error
def list_(status: str | None, limit: int, as_json: bool) -> None:
    """Jobs, newest first: id, kind, RQ status, queue, worker, description."""
    jobs = [job_json(job) for job in list_jobs(status, limit)]
    if as_json:
        click.echo(json.dumps({"jobs": jobs}, indent=2))
        return
    for job in jobs:
        click.echo("\t".join(_text(job[key]) for key in
                             ("jobId", "kind", "rqStatus", "queue", "worker", "description")))
    click.echo(f"{len(jobs)} jobs")


@jobs_cli.command("show")
@click.argument("job_id")
@JSON_OPTION
@fail_on_catalog_error
def show(job_id: str, as_json: bool) -> None:
    """One job: what it is, where it runs, its progress and its times."""
    job = job_json(job_status(job_id))
    if as_json:
        click.echo(json.dumps(job, indent=2))
        return
    width = max(len(key) for key in job)
    for key, value in job.items():
        text = json.dumps(value) if isinstance(value, dict) else _text(value)
        click.echo(f"{key:<{width}}  {text}")


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
