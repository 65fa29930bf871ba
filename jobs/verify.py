"""RQ entry point for verifying a backup: integrity always, a real test restore on request.

An incremental is valid only if its whole chain is: at ``restore`` level, its earlier
backups' integrity is checked too, then the chain is replayed into a scratch database and
compared with the incremental's manifest."""

from __future__ import annotations

import logging
from typing import Any

from rq import get_current_job

from jobs.context import app_context
from jobs.progress import save_progress, tag_job
from pgbackup import (
    Check,
    Manifest,
    RestoreProgress,
    Storage,
    VerifyResult,
    read_manifest,
    scratch_name,
    scratch_restore,
)
from pgbackup.chain_restore import ChainRestoreError, chain_links
from pgbackup.chains import ChainError, check_chain
from pgbackup.recovery import RecoveryReport, scratch_restore_chain
from services import activity, copies, restore_chains
from services.artifact_presence import check_stored, failed_check, state_of
from services.backups import target_connection
from services.claims import claim_database, drop_claimed
from services.errors import CatalogError
from services.extensions import db
from services.json_shapes import verification_record
from services.models import Backup, utcnow

log = logging.getLogger(__name__)


def run_verify(backup_id: str, level: str) -> dict[str, Any]:
    """Check ``backup_id`` at ``level`` and keep the result on the backup."""
    with app_context():
        tag_job(kind="verification", backupId=backup_id)
        backup = db.session.get(Backup, backup_id)
        if backup is None:
            raise RuntimeError(f"backup {backup_id} no longer exists")
        save_progress(phase="integrity")
        source = copies.source(backup, decrypting=level == "restore")
        result = check_stored(backup, source)
        if level == "integrity" and backup.type == "incremental":
            result.checks.append(_continuity(backup))
        if level == "restore" and result.is_valid:
            job_id = get_current_job().id
            try:
                result = _with_test_restore(backup, source.storage, result, job_id)
            finally:
                for sentence in drop_claimed(job_id):
                    log.warning("verification of %s: %s", backup.id, sentence)
        failed = failed_check(backup)
        backup.verification = ("valid" if result.is_valid else state_of(failed) if failed
                               else "corrupted")
        backup.verification_result = verification_record(result)
        backup.verified_at = utcnow()
        db.session.commit()
        activity.record("backup.verified", backup.id, outcome="ok" if result.is_valid else
                        "failed", detail=f"{level}: {backup.verification}", actor="worker")
        return backup.verification_result


def _with_test_restore(backup: Backup, store: Storage, integrity: VerifyResult,
                       job_id: str) -> VerifyResult:
    """Restore the copy in ``store`` into a scratch database (always dropped) and compare
    with the manifest; an incremental's chain, with the earlier backups' first readable
    copies."""
    manifest = read_manifest(store, backup.id)
    name = claim_database(job_id, scratch_name("verify"))
    server, keys = target_connection(), copies.identities()
    if backup.type != "incremental":
        with scratch_restore(server, store, manifest, name, progress=report_restore_progress,
                             identities=keys) as report:
            return _restored(integrity, [], report)
    chain, links = _chain_of(backup, store, manifest)
    if not chain.ok:
        return _restored(integrity, [chain], None)
    with scratch_restore_chain(server, links, name, progress=report_restore_progress,
                               identities=keys) as report:
        return _restored(integrity, [chain], report)


def _continuity(backup: Backup) -> Check:
    """``chain`` at the integrity level, from the catalog alone: the earlier backups are
    completed with their files in place, and each link starts at the LSN where the one
    before it ended (the restore level checks their files too, and replays them)."""
    try:
        chain = restore_chains.chain_to(backup)
        check_chain(restore_chains.links_of(chain))
    except CatalogError as exc:
        return Check("chain", False, exc.message)
    except ChainError as exc:
        return Check("chain", False, str(exc))
    return Check("chain", True, f"{len(chain)} backups from full {chain[0].id}, with no gap "
                 "between them (as the catalog records them)")


def _chain_of(backup: Backup, store: Storage,
              manifest: Manifest) -> tuple[Check, list[tuple[Storage, Manifest]]]:
    """The ``chain`` check (the earlier backups are there, pass their integrity check and
    form one unbroken chain with this one), and the chain to replay."""
    try:
        earlier = restore_chains.chain_to(backup)[:-1]
        sources = [(row, copies.source(row)) for row in earlier]
    except CatalogError as exc:
        return Check("chain", False, exc.message), []
    failed = [f"{row.id} ({'; '.join(c.detail for c in result.checks if not c.ok)})"
              for row, source in sources if not (result := check_stored(row, source)).is_valid]
    if failed:
        return Check("chain", False, "earlier backups of the chain fail their integrity "
                     "check: " + ", ".join(failed)), []
    links = [*[(source.storage, read_manifest(source.storage, row.id))
               for row, source in sources], (store, manifest)]
    try:
        chain_links([link for _, link in links])
    except ChainRestoreError as exc:
        return Check("chain", False, str(exc)), []
    return Check("chain", True, f"{len(links)} backups from full {links[0][1].backup_id}, "
                 "each passing its integrity check, with no gap between them"), links


def _restored(integrity: VerifyResult, extra: list[Check],
              report: RecoveryReport | None) -> VerifyResult:
    restored = [report.restore_check, *report.checks] if report else []
    return VerifyResult(
        level="restore",
        checks=[*integrity.checks, *extra, *restored],
        warnings=[*integrity.warnings, *(report.warnings if report else [])],
        checked_at=integrity.checked_at,
    )


def on_verify_failure(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """RQ failure callback, also called for abandoned jobs whose worker died: drop the
    scratch database the job may have left."""
    with app_context():
        for sentence in drop_claimed(job.id):
            log.warning("verification job %s: %s", job.id, sentence)


def report_restore_progress(progress: RestoreProgress, phase: str = "restore") -> None:
    save_progress(
        phase=phase,
        itemsDone=progress.items_done,
        itemsTotal=progress.items_total,
        currentItem=progress.current_item,
    )
