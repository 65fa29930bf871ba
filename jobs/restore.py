"""RQ entry point for restores.

Whatever the mode, the backup is first restored into a database of its own, with a fresh
name claimed in the catalog before it is created (see :mod:`claims`), and checked against
its manifest (row counts and content checksums). An incremental, or a restore to a point
in time, restores the chain the row names (its full and every incremental up to the
row's backup, each read from its first readable copy), to the row's ``point_in_time``.
Only then:
- ``new-database`` renames that database to the requested name;
- ``overwrite`` takes a safety backup of the live database, swaps the checked copy in
  under the live name and drops the old one (the safety backup can undo it);
- ``rehearsal`` reports the outcome and drops the copy.
Since that database is dropped if its restore fails, a single backup may be restored
into it in parallel (RESTORE_JOBS, :mod:`pgbackup.restore_jobs`); the result says which
mode ran (``restoreMode``).
A restore that fails at any step leaves the live database as it was, and drops the
databases it created (or names them in its error when it cannot).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import current_app

from jobs.backup import dump_into, follow_up
from jobs.context import app_context
from jobs.reconcile import restored_mark, settle
from jobs.verify import report_restore_progress
from pgbackup import (
    BackupError,
    Manifest,
    RecoveryReport,
    RestoreError,
    Storage,
    drop_database,
    read_manifest,
    rename_database,
    restore_checked,
    restore_lock,
    retired_name,
    scratch_name,
    scratch_restore,
    set_database_comment,
    swap_databases,
    working_name,
)
from pgbackup.recovery import restore_chain_checked, scratch_restore_chain
from services import activity, capture, copies, restore_chains
from services.artifact_presence import check_stored
from services.backups import mark, new_backup_row, storage, target_connection
from services.claims import claim_database, drop_claimed
from services.extensions import db
from services.failure_messages import describe_failure, estimated_backup_size
from services.json_shapes import iso
from services.models import Backup, Restore
from services.restores import restore_parallelism


@dataclass(frozen=True)
class _Plan:
    """What a restore reads: one backup, or a chain (the full first) to ``until``."""

    links: list[tuple[copies.Source, Manifest]]
    until: datetime | None
    chained: bool

    @property
    def stored(self) -> list[tuple[Storage, Manifest]]:
        return [(source.storage, manifest) for source, manifest in self.links]

    def restored(self, server: Any, name: str, **options: Any) -> RecoveryReport:
        """restore_checked, or its chain counterpart, into the new database ``name``
        (dropped if the restore fails: so a single backup may restore in parallel; a
        chain's full restores serially)."""
        if self.chained:
            return restore_chain_checked(server, name, self.stored, self.until, **options)
        return restore_checked(server, name, *self.stored[0], parallel=restore_parallelism(),
                               **options)

    def rehearsed(self, server: Any, name: str,
                  **options: Any) -> AbstractContextManager[RecoveryReport]:
        if self.chained:
            return scratch_restore_chain(server, self.stored, name, self.until, **options)
        return scratch_restore(server, *self.stored[0], name, parallel=restore_parallelism(),
                               **options)

    def sources(self) -> Iterator[copies.Source]:
        return (source for source, _ in self.links)


def run_restore(restore_id: str, create_roles: bool = False) -> dict[str, Any]:
    with app_context():
        restore = db.session.get(Restore, restore_id)
        if restore is None or restore.status != "queued":
            raise RuntimeError(f"restore {restore_id} is not queued; refusing to run it twice")
        mark(restore, "running")
        try:
            plan = _plan(restore)
            with restore_lock(target_connection(), restore.target_database):
                result = _read_from(MODES[restore.mode](restore, plan, create_roles), plan)
        except Exception as exc:
            db.session.rollback()
            error = describe_failure(exc, storage().root,
                                     estimated_backup_size(restore.target_database))
            if restore.retired_database:  # named just before the swap: did it take place?
                if settle(restore, error) == "completed":  # interrupted after the swap
                    return dict(restore.result or {})
            else:
                mark(restore, "failed",
                     error="; ".join([error, *drop_claimed(restore.job_id)]))
            activity.record("restore.run", restore.id, outcome="failed", detail=restore.error,
                            actor="worker")
            raise
        left = drop_claimed(restore.job_id)  # handed over by now: clears the claims
        mark(restore, "completed", result={**result, "warnings": [*result["warnings"], *left]})
        activity.record("restore.run", restore.id, detail=restore.target_database,
                        actor="worker")
        return result


def _plan(restore: Restore) -> _Plan:
    """The backup the row names, or its chain (an incremental, a point in time)."""
    backup = db.session.get(Backup, restore.backup_id)
    if backup is None:
        raise RestoreError(f"backup {restore.backup_id} no longer exists")
    until = restore.point_in_time.replace(tzinfo=UTC) if restore.point_in_time else None
    chained = restore_chains.is_chained(backup, until)
    rows = restore_chains.chain_to(backup) if chained else [backup]
    return _Plan([_checked_source(row) for row in rows], until, chained)


def _checked_source(backup: Backup) -> tuple[copies.Source, Manifest]:
    """The first copy that can be read and decrypted (local first); never one that fails
    its integrity check, or that its catalog row no longer describes."""
    source = copies.source(backup)
    integrity = check_stored(backup, source)
    if not integrity.is_valid:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in integrity.checks if not c.ok)
        raise RestoreError(f"backup {backup.id} failed its integrity check ({failed})")
    return source, read_manifest(source.storage, backup.id)


def _read_from(result: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    """The result says which copy was restored (of a chain: its last backup's), and why
    the ones before it were not."""
    *_, last = plan.sources()
    read_from = last.copy.destination if last.copy else "local"
    notes = [source.note for source in plan.sources() if source.note]
    return {**result, "readFrom": read_from, "warnings": [*result["warnings"], *notes]}


def _into_new_database(restore: Restore, plan: _Plan, create_roles: bool) -> dict[str, Any]:
    """Restore into a working database, then rename it to the target: the target name
    never holds a half-restored database, and an existing one is never touched."""
    server, target = target_connection(), restore.target_database
    working = claim_database(restore.job_id, working_name(target))
    report = plan.restored(server, working, like=current_app.config["TARGET_DATABASE"],
                           progress=report_restore_progress, identities=copies.identities(),
                           create_missing_roles=create_roles, settings_as=target,
                           settings_comment=False)  # comment: the mark
    _require_match(report, server)
    set_database_comment(server, working, restored_mark(restore))  # see jobs.reconcile
    try:
        rename_database(server, working, target)
    except psycopg.errors.DuplicateDatabase:
        raise RestoreError(f"database {target} was created by someone else during the "
                           "restore; it was left untouched: pick another name") from None
    return {**_result(report), "database": target}


def _rehearsal(restore: Restore, plan: _Plan, create_roles: bool) -> dict[str, Any]:
    name = claim_database(restore.job_id, scratch_name("rehearsal"))
    with plan.rehearsed(target_connection(), name, progress=report_restore_progress,
                        identities=copies.identities(),
                        create_missing_roles=create_roles) as report:
        return _result(report)


def _overwrite(restore: Restore, plan: _Plan, create_roles: bool) -> dict[str, Any]:
    server = target_connection()
    live = restore.target_database
    safety = new_backup_row("full", origin="safety", job_id=restore.job_id)
    restore.safety_backup_id = safety.id
    db.session.commit()
    dump_into(safety, phase="safety-backup")
    follow_up(safety)
    replacement = claim_database(restore.job_id, working_name(live))
    report = plan.restored(server, replacement, like=live, progress=report_restore_progress,
                           identities=copies.identities(), create_missing_roles=create_roles,
                           settings_as=live)
    _require_match(report, server)
    restore.replacement_database, restore.retired_database = replacement, retired_name(live)
    db.session.commit()  # before the swap: see jobs.reconcile._swap_state
    # Refused before renaming (sessions that would not end, say): live is untouched, and
    # run_restore drops the claimed copy.
    replaced = swap_databases(server, live, replacement, restore.retired_database)
    result = {**_result(report), "safetyBackupId": safety.id}
    try:
        # The chain's slot is the replaced database's: its changes are no longer the
        # protected database's, and the slot would keep that database from being dropped.
        capture.end_chains_on(replaced, f"the database was replaced by restore {restore.id}")
        drop_database(server, replaced)
    except (psycopg.Error, BackupError) as exc:  # the restore succeeded: never report failed
        result["warnings"] = [*result["warnings"], f"the replaced database {replaced} could "
                              f"not be dropped ({server.redact_text(str(exc).strip())}); "
                              "drop it by hand once it is no longer needed"]
    return result


def _require_match(report: RecoveryReport, server: Any) -> None:
    """A restored copy that differs from the manifest is dropped, never reported as fine."""
    if report.matches:
        return
    drop_database(server, report.database)
    differences = "; ".join(check.detail for check in report.checks if not check.ok)
    raise RestoreError(f"the restored data does not match the backup's manifest: {differences}")


def _result(report: RecoveryReport) -> dict[str, Any]:
    return {
        "database": report.database,
        "matchesManifest": report.matches,
        "itemsRestored": report.outcome.items_total,
        "restoreMs": report.outcome.duration_ms,
        "restoreJobs": report.outcome.jobs.jobs,  # 1: serial
        "restoreMode": report.outcome.jobs.mode,  # serial, or parallel (N jobs)
        "restoreModeReason": report.outcome.jobs.reason,
        "skippedRoles": report.skipped_roles,
        "rolesCreated": report.roles_created.roles if report.roles_created else [],
        "databaseSettings": asdict(report.settings) if report.settings else None,
        "warnings": report.warnings,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
        "chain": _chain_result(report),
    }


def _chain_result(report: RecoveryReport) -> dict[str, Any] | None:
    """Which backups a chain's restore replayed, to which moment, up to which commit."""
    chain = report.chain
    if chain is None:
        return None
    return {"full": chain.full, "replayed": list(chain.replayed),
            "pointInTime": iso(chain.until), "lastCommitApplied": iso(chain.last_commit),
            "transactionsApplied": chain.transactions, "comparedWith": chain.compared_with,
            "tablesAtPreviousState": chain.kept_previous}


MODES = {"new-database": _into_new_database, "overwrite": _overwrite, "rehearsal": _rehearsal}


def on_restore_failure(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """RQ failure callback, also called for abandoned jobs whose worker died."""
    with app_context():
        restore = db.session.get(Restore, job.args[0]) if job.args else None
        if restore is not None and restore.is_active:
            settle(restore, f"{exc_type.__name__}: {exc}" if exc_type else "job failed")
