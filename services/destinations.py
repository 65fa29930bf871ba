"""Destinations: the places a backup is copied to.

``local`` is built in: BACKUP_DIR, as before there were destinations. An admin adds more:
other local directories (a mounted NAS) and S3-compatible buckets (AWS, MinIO, R2, B2, GCS
through its S3 interoperability endpoint). A destination may encrypt what it stores to age
recipients, keep its own retention, and lock its objects (S3 Object Lock).

The secret access key is write-only: stored encrypted (secretbox.py), never returned, never
put in a job argument, a log line or an error message. Without one, the S3 client takes
its credentials from the environment or the standard AWS chain (an instance role, say).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pgbackup import LocalStorage, ObjectStoreError, S3Storage, Storage
from pgbackup.encryption import parse_recipients
from services import activity, secretbox
from services.errors import CatalogError
from services.extensions import db
from services.models import BackupCopy, Destination, Schedule

BUILTIN = "local"
SECRET_FIELD = "secretAccessKey"
PROBE_BYTES = 4096


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str  # one sentence, no secret


def builtin() -> Destination:
    """BACKUP_DIR as a destination (not a row: it follows the settings, its retention
    too)."""
    config = current_app.config
    return Destination(id=0, name=BUILTIN, type="local",
                       settings={"path": str(config["BACKUP_DIR"])}, encrypt_to=[],
                       required=True, retention_days=config.get("LOCAL_RETENTION_DAYS"),
                       keep_at_least=config.get("LOCAL_KEEP_AT_LEAST")
                       if config.get("LOCAL_RETENTION_DAYS") else None)


def list_destinations() -> list[Destination]:
    rows = db.session.scalars(select(Destination).order_by(Destination.name)).all()
    return [builtin(), *rows]


def get_destination(destination_id: int) -> Destination:
    destination = db.session.get(Destination, destination_id)
    if destination is None:
        raise CatalogError(f"no destination {destination_id}", status=404, code="not_found")
    return destination


def by_name(name: str) -> Destination:
    if name == BUILTIN:
        return builtin()
    destination = db.session.scalars(select(Destination).where(Destination.name == name)).first()
    if destination is None:
        raise CatalogError(f"no destination named {name!r}; GET /api/system/destinations "
                           "lists them", code="unknown_destination")
    return destination


def resolve(names: list[str] | None) -> list[Destination]:
    """The destinations a backup goes to: ``names``, or DEFAULT_DESTINATIONS."""
    chosen = names or list(current_app.config["DEFAULT_DESTINATIONS"])
    if len(set(chosen)) != len(chosen):
        raise CatalogError("each destination may be named once", code="invalid_destinations")
    return [by_name(name) for name in chosen]


def check_recipients(values: list[str]) -> None:
    """Refuse anything but age X25519 recipients (``age1...``), naming the bad entry."""
    if values:
        parse_recipients(values)


def _check_path(fields: dict[str, Any]) -> None:
    """A local destination is an existing directory (a mounted disk): never created here,
    so a typo or an unmounted disk is an error, not a new directory on the root disk.
    os.path.isdir, not Path.is_dir: a name too long or an unreadable parent is "not a
    directory" too, not an OSError."""
    if fields["type"] == "local" and not os.path.isdir(fields["settings"]["path"]):
        raise CatalogError(f"path {fields['settings']['path']} is not an existing directory: "
                           "create it (or mount its disk) first", code="invalid_destination")


def save(destination: Destination, fields: dict[str, Any], actor: str | None = None) -> Destination:
    """Create or update from validated API fields; a secret left out keeps the stored one."""
    if fields["name"] == BUILTIN:
        raise CatalogError(f"{BUILTIN!r} is the built-in destination (BACKUP_DIR); pick "
                           "another name", status=409, code="conflict")
    _check_path(fields)
    creating = destination.id is None
    if not creating:
        _keep_where_copies_are(destination, fields)
    secret = fields.pop(SECRET_FIELD, None)
    destination.name = fields["name"]
    destination.type = fields["type"]
    destination.settings = fields["settings"]
    destination.encrypt_to = fields["encryptTo"]
    destination.required = fields["required"]
    destination.retention_days = fields["retentionDays"]
    destination.keep_at_least = fields["keepAtLeast"]
    destination.lock_mode = fields["lockMode"]
    destination.lock_days = fields["lockDays"]
    if secret is not None:
        destination.secret = secretbox.encrypt(secret)
    if destination.type != "s3":
        destination.secret = None
    if creating:
        db.session.add(destination)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise CatalogError(f"a destination named {fields['name']!r} exists; pick another "
                           "name", status=409, code="conflict") from None
    activity.record("destination.create" if creating else "destination.update",
                    destination.name, detail=destination.type, actor=actor)
    return destination


# What finds a destination's stored copies: changing one would lose them.
WHERE = ("type", "path", "bucket", "prefix")


def _stored_copies(name: str) -> int:
    return db.session.scalar(select(func.count()).select_from(BackupCopy).where(
        BackupCopy.destination == name, BackupCopy.status == "stored")) or 0


def _keep_where_copies_are(destination: Destination, fields: dict[str, Any]) -> None:
    """Refuse to rename or move a destination that holds backups: its copies are found by
    its name and where it points (keys and endpoint may change, to rotate a key say)."""
    before = {"type": destination.type, **(destination.settings or {})}
    after = {"type": fields["type"], **fields["settings"]}
    moved = [key for key in WHERE if before.get(key) != after.get(key)]
    if fields["name"] != destination.name:
        moved.insert(0, "name")
        _refuse_if_scheduled(destination.name, "rename")
    if moved and (held := _stored_copies(destination.name)):
        raise CatalogError(
            f"destination {destination.name!r} holds {held} backup copies, which would be "
            f"lost by changing its {', '.join(moved)}: add a new destination instead",
            status=409, code="destination_in_use")


def _refuse_if_scheduled(name: str, change: str) -> None:
    """A schedule names its destinations: renaming or deleting one would break it."""
    naming = [schedule.name for schedule in db.session.scalars(select(Schedule))
              if name in (schedule.destinations or ())]
    if naming:
        raise CatalogError(
            f"destination {name!r} is named by schedule {', '.join(sorted(naming))}: change "
            f"{'it' if len(naming) == 1 else 'them'} first, then {change} it", status=409,
            code="destination_in_use")


def delete(destination_id: int, actor: str | None = None) -> None:
    """Forget a destination that holds no backup (deleting them first deletes their
    copies); one that does is refused, or its backups could no longer be restored."""
    destination = get_destination(destination_id)
    _refuse_if_scheduled(destination.name, "delete")
    if held := _stored_copies(destination.name):
        raise CatalogError(
            f"destination {destination.name!r} holds {held} backup copies: delete those "
            "backups first, or they could no longer be restored", status=409,
            code="destination_in_use")
    name = destination.name
    db.session.delete(destination)
    db.session.commit()
    activity.record("destination.delete", name, actor=actor)


def storage_for(destination: Destination, lock: bool = True) -> Storage:
    """The engine's storage for ``destination``, its secret decrypted only here; with
    ``lock``, what it writes is locked as the destination says."""
    settings = destination.settings or {}
    if destination.type == "local":  # BACKUP_DIR is made on first use, a mounted disk never
        return LocalStorage(Path(settings["path"]), create=destination.name == BUILTIN)
    # A key id without its stored secret: both come from the environment / AWS chain.
    secret = secretbox.decrypt(destination.secret) if destination.secret else None
    return S3Storage(
        bucket=settings["bucket"], prefix=settings.get("prefix") or "",
        endpoint_url=settings.get("endpointUrl"), region=settings.get("region"),
        access_key_id=settings.get("accessKeyId") if secret else None,
        secret_access_key=secret,
        force_path_style=bool(settings.get("forcePathStyle")),
        object_lock=lock_of(destination) if lock else None,
    )


def lock_of(destination: Destination) -> tuple[str, timedelta] | None:
    if destination.lock_mode is None or destination.lock_days is None:
        return None
    return destination.lock_mode, timedelta(days=destination.lock_days)


def probe(destination: Destination) -> ProbeResult:
    """Write, read back and delete a small object; says which step failed, in a sentence."""
    name = f"probe-{secrets.token_hex(8)}.tmp"
    data = secrets.token_bytes(PROBE_BYTES)
    step = "connecting"
    try:
        storage = storage_for(destination, lock=False)
        step = "writing a probe object"
        with storage.atomic_writer(name) as writer:
            writer.write(data)
        step = "reading the probe object back"
        with storage.open_read(name) as reader:
            if reader.read(PROBE_BYTES + 1) != data:
                return ProbeResult(False, "the probe object read back differs from what was "
                                          "written")
        step = "deleting the probe object"
        storage.delete(name)
    except (ObjectStoreError, OSError, ValueError, secretbox.SecretBoxError) as exc:
        return ProbeResult(False, f"{step} failed: {exc}")
    return ProbeResult(True, f"wrote, read back and deleted {PROBE_BYTES} bytes")
