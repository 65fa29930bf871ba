"""Databases a job creates: named in the catalog before they exist, dropped unless handed over.

Restores, rehearsals and test restores all work in databases of their own with fresh
names (:func:`pgbackup.working_name`, :func:`pgbackup.scratch_name`). The job claims
each name (a committed catalog row) before creating the database, so if its worker dies,
whoever settles the job drops what it left, or names it. A database that was handed over
(renamed to the restore's target, or swapped in) no longer exists under its claimed name,
so dropping a job's claims after it succeeded is a no-op that clears the rows.
"""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy import select

from pgbackup import database_exists, drop_database
from services.backups import target_connection
from services.extensions import db
from services.models import Claim

log = logging.getLogger(__name__)


def claim_database(job_id: str, name: str) -> str:
    """Record that ``job_id`` is about to create database ``name``; returns the name."""
    db.session.add(Claim(job_id=job_id, name=name))
    db.session.commit()
    return name


def drop_claimed(job_id: str) -> list[str]:
    """Drop every database ``job_id`` claimed that still exists, and forget the claims.

    Returns a sentence for each database that could not be dropped (its claim stays, so
    a later reconciliation tries again).
    """
    server = target_connection()
    left: list[str] = []
    for claim in db.session.scalars(select(Claim).where(Claim.job_id == job_id)).all():
        try:
            if database_exists(server, claim.name):
                drop_database(server, claim.name)
                log.info("job %s: dropped database %s it had created", job_id, claim.name)
        except psycopg.Error as exc:
            reason = server.redact_text(str(exc).strip()) or type(exc).__name__
            left.append(f"database {claim.name} was left behind and could not be dropped "
                        f"({reason}): drop it by hand")
            continue
        db.session.delete(claim)
    db.session.commit()
    return left


def claiming_jobs() -> list[str]:
    """The ids of the jobs that hold claims."""
    return list(db.session.scalars(select(Claim.job_id).distinct()))
