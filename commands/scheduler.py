"""flask scheduler: rq-scheduler, plus the catalog-to-Redis sync of schedules."""

from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import with_appcontext
from rq_scheduler import Scheduler

from jobs.queues import BACKUP_QUEUE, redis_connection
from services import schedules


class SyncingScheduler(Scheduler):
    """Before each pass (so on start-up and then periodically, under rq-scheduler's lock
    so two schedulers never do it at once), align its registrations with the catalog."""

    def __init__(self, app, **kwargs) -> None:
        super().__init__(**kwargs)
        self.app = app

    def enqueue_jobs(self):
        with self.app.app_context():
            changes = schedules.sync_schedules()
            if changes["added"] or changes["removed"]:
                self.log.info("schedules synced: %s", changes)
        return super().enqueue_jobs()


@click.command("scheduler")
@click.option("--interval", default=10, show_default=True,
              help="Seconds between passes; a slot fires at most this late.")
@click.option("--burst", is_flag=True, help="One pass, then exit.")
@with_appcontext
def scheduler_command(interval: int, burst: bool) -> None:
    """Run rq-scheduler with the schedules kept in sync with the catalog."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    dropped = schedules.drop_orphaned_registrations()
    if dropped:
        logging.getLogger(__name__).info("deleted %d orphaned schedule registrations: %s",
                                         len(dropped), ", ".join(dropped))
    SyncingScheduler(
        current_app._get_current_object(), queue_name=BACKUP_QUEUE,
        connection=redis_connection(), interval=interval,
    ).run(burst=burst)
