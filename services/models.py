"""The catalog: what the app knows about backups, users and API tokens.

Artifacts and their manifests in BACKUP_DIR stay understandable without this catalog;
the catalog adds status, timings, jobs and ownership.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from services.extensions import db

if TYPE_CHECKING:
    # db.Model is built at run time (an attribute mypy cannot use as a base class) from the
    # declarative configuration of Base, so the models are type-checked against Base.
    from services.extensions import Base as Model
else:
    Model = db.Model

BACKUP_TYPES = ("full", "schema-only", "incremental")
ACTIVE_STATUSES = ("queued", "running")
STATUSES = ("queued", "running", "completed", "failed")
VERIFY_LEVELS = ("integrity", "restore")
VERIFICATIONS = ("unverified", "valid", "corrupted", "missing")
UNRESTORABLE = ("corrupted", "missing")  # a completed backup with these restores nothing
SCHEDULE_TYPES = ("full", "incremental", "schema-only")
FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "cron")
RESTORE_MODES = ("overwrite", "new-database", "rehearsal")
# Ids are never reused, so that an id in the activity log, a URL or a job id ("delivery-7")
# names one row for good: AUTOINCREMENT on SQLite (migration 0011); PostgreSQL's sequences
# never hand out a number twice anyway.
NO_REUSE = {"sqlite_autoincrement": True}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Backup(Model):
    """One backup of a target database; its id names the artifact file."""

    __tablename__ = "backups"
    # The list's orders (services.backups.list_backups): newest first, ties by id, for the
    # whole catalog or one type or status; each is an index walk, never a sort.
    __table_args__ = (
        Index("ix_backups_created_at_id", "created_at", "id"),
        Index("ix_backups_type_created_at_id", "type", "created_at", "id"),
        Index("ix_backups_status_created_at_id", "status", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(64), default="default", index=True)
    database: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    compress: Mapped[bool] = mapped_column(default=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16), default="manual")
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL"), index=True)
    verification: Mapped[str] = mapped_column(String(16), default="unverified")
    verification_result: Mapped[dict | None] = mapped_column(JSON)
    verified_at: Mapped[datetime | None]
    job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("backups.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    tables: Mapped[list | None] = mapped_column(JSON)
    # Change capture (see pgbackup.manifest.Capture): the slot holding the chain's later
    # changes, the LSN range and commit times held, and why no chain starts or continues.
    slot_name: Mapped[str | None] = mapped_column(String(63), index=True)
    start_lsn: Mapped[str | None] = mapped_column(String(17))
    end_lsn: Mapped[str | None] = mapped_column(String(17))
    consistent_at: Mapped[datetime | None]  # see pgbackup.manifest.Capture
    covers_until: Mapped[datetime | None]
    first_commit_at: Mapped[datetime | None]
    last_commit_at: Mapped[datetime | None]
    capture_note: Mapped[str | None] = mapped_column(Text)
    transactions: Mapped[int | None]  # an incremental's, as its manifest counts them
    changes: Mapped[int | None]

    parent: Mapped[Backup | None] = relationship(remote_side=[id])
    copies: Mapped[list[BackupCopy]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="BackupCopy.id")

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class Restore(Model):
    """One restore of a backup: over the protected database, into a new one, or a rehearsal
    into a scratch database that is dropped afterwards."""

    __tablename__ = "restores"
    __table_args__ = (UniqueConstraint("active_slot", name="uq_restores_active_slot"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Plain ids, no foreign keys: a restore's history outlives the backups it names.
    backup_id: Mapped[str] = mapped_column(String(64), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    target_database: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    safety_backup_id: Mapped[str | None] = mapped_column(String(64))
    # A point-in-time restore's moment (UTC); backup_id is then the last backup of its
    # chain that the restore reads.
    point_in_time: Mapped[datetime | None]
    # An overwrite names both databases of its swap before it starts, so that a worker
    # dying in the middle leaves enough to tell whether the swap took place.
    replacement_database: Mapped[str | None] = mapped_column(String(63))
    retired_database: Mapped[str | None] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None] = mapped_column(JSON)
    # "restore" while queued or running, NULL after: a unique column, so two requests that
    # race can never both start a restore (NULLs do not clash).
    active_slot: Mapped[str | None] = mapped_column(String(16))

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class Claim(Model):
    """A database a job is about to create and must drop unless the job hands it over.

    Recorded (committed) before the database is created, so that whoever settles a job
    whose worker died knows every name it may have left on the server.
    """

    __tablename__ = "claims"
    __table_args__ = (UniqueConstraint("job_id", "name"), NO_REUSE)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Schedule(Model):
    """A recurring backup; its times are wall-clock times in ``timezone``."""

    __tablename__ = "schedules"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    type: Mapped[str] = mapped_column(String(32), default="full")
    frequency: Mapped[str] = mapped_column(String(16))
    time: Mapped[str | None] = mapped_column(String(5))
    day_of_week: Mapped[int | None]
    day_of_month: Mapped[int | None]
    cron: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    retention_days: Mapped[int] = mapped_column(default=7)
    keep_at_least: Mapped[int] = mapped_column(default=1)
    verify: Mapped[str] = mapped_column(String(16), default="integrity")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(16))
    # The destinations' names; None: DEFAULT_DESTINATIONS at the time it fires.
    destinations: Mapped[list | None] = mapped_column(JSON)

    @property
    def job_id(self) -> str:
        """The stable id of its registration in rq-scheduler."""
        return f"schedule-{self.id}"


class ScheduleRun(Model):
    """One firing of a schedule; (schedule, slot) is unique, so a slot runs at most once
    however many schedulers fire it."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "slot"), NO_REUSE)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    slot: Mapped[str] = mapped_column(String(40))
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))
    backup_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)


class Deletion(Model):
    """Why a backup was deleted, by whom or by which rule; kept after the backup is gone."""

    __tablename__ = "deletions"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    backup_id: Mapped[str] = mapped_column(String(64), index=True)
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)


class User(UserMixin, Model):
    """A dashboard login."""

    __tablename__ = "users"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    # Part of the session cookie's user id: raising it ends every session of the user.
    session_version: Mapped[int] = mapped_column(default=1)
    # The optional TOTP second factor (RFC 6238): the base32 secret once confirmed, and the
    # last time step accepted, so a code cannot be used twice.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def set_password(self, password: str) -> None:
        """Hashed with werkzeug's default (scrypt); the test suite passes a cheaper method
        as PASSWORD_HASH_METHOD in its test config, never set from the environment."""
        method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def display_name(self) -> str:
        return self.username

    @property
    def has_totp(self) -> bool:
        return self.totp_secret is not None


class ApiToken(Model):
    """A bearer token for scripts. Only its SHA-256 is stored: tokens are random, so a
    slow password hash would add nothing but latency to every API call."""

    __tablename__ = "api_tokens"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]

    is_authenticated = True
    is_active = True
    is_anonymous = False

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def mint(
        cls, name: str, role: str, expires_at: datetime | None = None
    ) -> tuple[ApiToken, str]:
        """A new token row and the clear token, which is shown once and never stored."""
        token = "pbm_" + secrets.token_urlsafe(32)
        return cls(name=name, role=role, token_hash=cls.hash(token), expires_at=expires_at), token

    @property
    def usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > utcnow())

    def get_id(self) -> str:
        return f"token:{self.id}"

    @property
    def display_name(self) -> str:
        return f"token:{self.name}"




class ActivityEvent(Model):
    """Who did what, when: the activity log. Rows are only ever added."""

    __tablename__ = "activity"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(80))  # user, token:<name>, cli, scheduler, system
    action: Mapped[str] = mapped_column(String(40), index=True)  # e.g. backup.create, login
    target: Mapped[str | None] = mapped_column(String(120))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # activity.OUTCOMES
    source: Mapped[str | None] = mapped_column(String(64))  # remote address, when a request
    detail: Mapped[str | None] = mapped_column(Text)
    # How often it happened: repeats that a client can make at will (a refused token) are
    # counted on the event instead of added (activity.record_repeatable).
    times: Mapped[int] = mapped_column(default=1, server_default="1")


class NotificationChannel(Model):
    """Where alerts go: a webhook (JSON, HMAC-signed), SMTP email, or a Slack-compatible
    incoming webhook. ``config`` holds the kind's settings; its secrets are write-only in
    the API."""

    __tablename__ = "notification_channels"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # webhook, email, slack
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Model):
    """One problem, from when it starts to when it clears; ``key`` identifies the problem
    (e.g. ``no-recent-backup:schedule:3``) so it is notified once, not on every check."""

    __tablename__ = "alerts"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), index=True)
    severity: Mapped[str] = mapped_column(String(16))  # warning, critical
    message: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_notified_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None] = mapped_column(index=True)


class Delivery(Model):
    """One notification sent (or tried) to one channel, retried until it goes through."""

    __tablename__ = "deliveries"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(16))  # fired, reminder, cleared, test
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None]


class Destination(Model):
    """Where backups are copied, besides the built-in ``local`` (BACKUP_DIR): see
    services/destinations.py. ``secret`` is the S3 secret access key, encrypted."""

    __tablename__ = "destinations"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    type: Mapped[str] = mapped_column(String(16))  # local, s3
    # local: path; s3: bucket, prefix, endpointUrl, region, accessKeyId, forcePathStyle
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    secret: Mapped[str | None] = mapped_column(Text)
    encrypt_to: Mapped[list] = mapped_column(JSON, default=list)  # age recipients
    required: Mapped[bool] = mapped_column(default=True)
    retention_days: Mapped[int | None]
    keep_at_least: Mapped[int | None]
    lock_mode: Mapped[str | None] = mapped_column(String(16))  # GOVERNANCE, COMPLIANCE
    lock_days: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BackupCopy(Model):
    """One backup stored at one destination, checked there by its SHA-256."""

    __tablename__ = "backup_copies"
    __table_args__ = (UniqueConstraint("backup_id", "destination"), NO_REUSE)

    id: Mapped[int] = mapped_column(primary_key=True)
    backup_id: Mapped[str] = mapped_column(
        ForeignKey("backups.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(80), index=True)  # its name
    required: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    artifact: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(1024))
    encrypted: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime | None]
    attempted_at: Mapped[datetime | None]  # the last write, first or retried


class CatalogVersion(Model):
    """A counter per list that changes whenever that list's rows do, in the same
    transaction (services.catalog_version): an unchanged number is an unchanged list."""

    __tablename__ = "catalog_versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


# A catalog made by create_all starts with its counter, as migration 0012 makes it.
event.listen(CatalogVersion.__table__, "after_create",
             DDL("INSERT INTO catalog_versions (name, version) VALUES ('backups', 0)"))
