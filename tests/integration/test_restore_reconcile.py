"""An overwrite whose worker died around the swap is settled by what the server shows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from redis import Redis
from rq.exceptions import AbandonedJobError

from jobs.reconcile import reconcile_backups, restored_mark
from pgbackup import database_exists, set_database_comment
from services import activity
from services.backups import mark, target_connection
from services.claims import claim_database, claiming_jobs
from services.extensions import db
from services.models import Restore
from tests.support.web import login

LEFTOVERS = ("pagila_swap_copy", "pagila_replaced_20261126120000")


@pytest.fixture
def interrupted(app, pagila, pg_server):
    """A running overwrite of the protected database whose job is gone from Redis, with
    both names of its swap recorded, as jobs.restore records them before swapping."""
    with app.app_context():
        row = Restore(id="restore-interrupted", backup_id="backup-x", mode="overwrite",
                      target_database=pagila.rsplit("/", 1)[1], job_id="job-gone",
                      safety_backup_id="backup-safety", replacement_database=LEFTOVERS[0],
                      retired_database=LEFTOVERS[1])
        db.session.add(row)
        mark(row, "running")
        claim_database("job-gone", LEFTOVERS[0])  # as the job claims its copy
        restore_id = row.id
    yield restore_id
    for name in LEFTOVERS:
        pg_server.drop_database(name)


def settle(app, restore_id: str) -> tuple[list[str], Restore]:
    with app.app_context():
        failed = reconcile_backups(Redis.from_url(app.config["REDIS_URL"]))
        row = db.session.get(Restore, restore_id)
        db.session.expunge(row)
        return failed, row


def test_a_swap_that_took_place_is_completed_with_a_warning(
        app, client, pg_server, interrupted):
    pg_server.create_database(LEFTOVERS[1])  # the old database under its retired name
    failed, row = settle(app, interrupted)
    assert failed == []
    assert row.status == "completed" and row.finished_at is not None
    assert row.result["database"] == row.target_database
    assert row.result["safetyBackupId"] == "backup-safety"
    [warning] = row.result["warnings"]
    assert "stopped after the swap" in warning and "gone from the queue" in warning
    assert f"kept as {LEFTOVERS[1]}" in warning
    with app.app_context():
        [event] = activity.recent(5, activity.Filters(action="restore.run"))
        assert (event.actor, event.outcome) == ("worker", "ok")
    login(client)
    panel = client.get("/system/backup/restores").get_data(as_text=True)
    assert '<li class="issue issue-warn">the worker stopped after the swap' in panel


def test_a_swap_that_did_not_happen_fails_and_drops_the_claimed_copy(
        app, pg_server, interrupted):
    pg_server.create_database(LEFTOVERS[0])  # the checked copy, still under its own name
    failed, row = settle(app, interrupted)
    assert failed == [interrupted]
    assert row.status == "failed"
    assert f"{row.target_database} was not replaced" in row.error
    with app.app_context():
        assert not database_exists(target_connection(), LEFTOVERS[0])
        assert claiming_jobs() == []


def test_without_evidence_either_way_the_restore_fails_as_before(app, interrupted):
    failed, row = settle(app, interrupted)
    assert failed == [interrupted]
    assert row.status == "failed" and "gone from the queue" in row.error
    assert "not replaced" not in row.error


def test_rqs_failure_callback_for_an_abandoned_job_settles_it_the_same_way(
        app, pg_server, interrupted):
    from jobs.restore import on_restore_failure

    pg_server.create_database(LEFTOVERS[1])
    abandoned = SimpleNamespace(args=[interrupted])  # all the callback reads of RQ's job
    with app.app_context():
        on_restore_failure(abandoned, None, AbandonedJobError, AbandonedJobError("gone"), None)
        row = db.session.get(Restore, interrupted)
        assert row.status == "completed"
        assert "stopped after the swap (AbandonedJobError: gone)" in row.result["warnings"][0]


@pytest.fixture
def interrupted_new_database(app, pg_server):
    """A running restore into a new database whose job is gone, its working copy claimed."""
    with app.app_context():
        row = Restore(id="restore-renaming", backup_id="backup-x", mode="new-database",
                      target_database="restored_here", job_id="job-gone-too")
        db.session.add(row)
        mark(row, "running")
        claim_database("job-gone-too", "restored_here_restore_0badcafe")
        restore_id = row.id
    yield restore_id
    for name in ("restored_here", "restored_here_restore_0badcafe"):
        pg_server.drop_database(name)


def test_a_new_database_restore_renamed_into_place_is_completed(
        app, pg_server, interrupted_new_database):
    """The rename is the job's last step; the restore's mark on the target proves it ran."""
    pg_server.create_database("restored_here")
    with app.app_context():
        row = db.session.get(Restore, interrupted_new_database)
        set_database_comment(target_connection(), "restored_here", restored_mark(row))
    failed, row = settle(app, interrupted_new_database)
    assert failed == []
    assert row.status == "completed" and row.result["database"] == "restored_here"
    assert "stopped right after the restore" in row.result["warnings"][0]


def test_a_new_database_restore_cut_short_drops_its_copy_and_never_the_target(
        app, pg_server, interrupted_new_database):
    pg_server.create_database("restored_here")  # someone else's, without the mark
    pg_server.create_database("restored_here_restore_0badcafe")
    failed, row = settle(app, interrupted_new_database)
    assert failed == [interrupted_new_database] and row.status == "failed"
    with app.app_context():
        assert not database_exists(target_connection(), "restored_here_restore_0badcafe")
        assert database_exists(target_connection(), "restored_here")
        assert claiming_jobs() == []
