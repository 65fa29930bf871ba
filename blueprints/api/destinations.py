"""Destinations under /api/system/destinations (admins): local directories and
S3-compatible buckets a backup is copied to. ``secretAccessKey`` is write-only: it reads
back as ``"set"`` or null, and a PUT without it keeps the stored one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from flask import jsonify
from flask_login import current_user
from pydantic import AfterValidator, Field, StrictBool, TypeAdapter, model_validator

from blueprints.api import bp
from blueprints.api.schemas import Name, Printable, Strict, json_body
from blueprints.api.serializers import destination_health_json, iso
from services import destination_health, destinations, rescan
from services.models import Destination

# ---- request schemas ----------------------------------------------------------------

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def _absolute_path(value: str) -> str:
    path = Path(value)
    if not path.is_absolute() or ".." in path.parts:
        raise ValueError("path must be an absolute directory path without '..'")
    return value


def _bucket(value: str) -> str:
    if not BUCKET.fullmatch(value):
        raise ValueError("bucket must be 3-63 lowercase letters, digits, '.' or '-'")
    return value


def _prefix(value: str) -> str:
    value = value.strip("/")
    if value and (not PREFIX.fullmatch(value) or {".", ".."} & set(value.split("/"))):
        raise ValueError("prefix may use letters, digits, '.', '_', '-' and '/' between parts")
    return value


def _endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("endpointUrl must be an http:// or https:// URL with a host")
    return value


def _recipients(values: list[str]) -> list[str]:
    destinations.check_recipients(values)  # raises ValueError naming the bad entry
    return values


Text = Annotated[str, Field(min_length=1, max_length=255), Printable]


class Retention(Strict):
    days: int | None = Field(default=None, ge=1, le=36500)
    keepAtLeast: int | None = Field(default=None, ge=1, le=1000)


class ObjectLock(Strict):
    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int = Field(ge=1, le=36500)


class _Destination(Strict):
    name: Name
    encryptTo: Annotated[list[str], Field(default_factory=list, max_length=20),
                         AfterValidator(_recipients)]
    required: StrictBool = True
    retention: Retention = Field(default_factory=Retention)


class LocalDestination(_Destination):
    type: Literal["local"]
    path: Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_absolute_path)]


class S3Destination(_Destination):
    type: Literal["s3"]
    bucket: Annotated[str, AfterValidator(_bucket)]
    prefix: Annotated[str, Field(max_length=512), AfterValidator(_prefix)] = ""
    endpointUrl: Annotated[str, Field(max_length=2000), AfterValidator(_endpoint)] | None = None
    region: Text | None = None
    accessKeyId: Text | None = None
    secretAccessKey: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    forcePathStyle: StrictBool = False
    objectLock: ObjectLock | None = None
    # false: a key without delete permission; deletions are left to the lifecycle rules
    deleteObjects: StrictBool = True

    @model_validator(mode="after")
    def key_pairs(self) -> S3Destination:
        if self.secretAccessKey and not self.accessKeyId:
            raise ValueError("a secretAccessKey needs its accessKeyId")
        return self


DESTINATION_REQUEST = TypeAdapter(Annotated[LocalDestination | S3Destination,
                                            Field(discriminator="type")])
S3_SETTINGS = ("bucket", "prefix", "endpointUrl", "region", "accessKeyId", "forcePathStyle",
               "deleteObjects")


def destination_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A destination request, validated, as services.destinations.save takes it."""
    request = DESTINATION_REQUEST.validate_python(body)
    if isinstance(request, LocalDestination):
        settings: dict[str, Any] = {"path": request.path}
        lock = None
    else:
        settings = {key: getattr(request, key) for key in S3_SETTINGS}
        lock = request.objectLock
    fields = {"name": request.name, "type": request.type, "settings": settings,
              "encryptTo": request.encryptTo, "required": request.required,
              "retentionDays": request.retention.days,
              "keepAtLeast": request.retention.keepAtLeast,
              "lockMode": lock.mode if lock else None, "lockDays": lock.days if lock else None}
    if isinstance(request, S3Destination) and request.secretAccessKey is not None:
        fields[destinations.SECRET_FIELD] = request.secretAccessKey
    return fields


# ---- responses ----------------------------------------------------------------------

def destination_json(destination: Destination) -> dict[str, Any]:
    settings = dict(destination.settings or {})
    body: dict[str, Any] = {
        "id": destination.id or None, "name": destination.name, "type": destination.type,
        "builtin": destination.name == destinations.BUILTIN,
        **settings, "encryptTo": list(destination.encrypt_to or []),
        "required": destination.required,
        "retention": {"days": destination.retention_days,
                      "keepAtLeast": destination.keep_at_least},
        "objectLock": ({"mode": destination.lock_mode, "days": destination.lock_days}
                       if destination.lock_mode else None),
        "createdAt": iso(destination.created_at),
        "health": destination_health_json(
            destination_health.health_of([destination.name])[destination.name]),
    }
    if destination.type == "s3":
        body[destinations.SECRET_FIELD] = "set" if destination.secret else None
        body.setdefault("deleteObjects", True)  # saved before the setting existed
    return body


# ---- routes -------------------------------------------------------------------------

@bp.get("/system/destinations")
def list_destinations():
    return jsonify(destinations=[destination_json(d) for d in destinations.list_destinations()])


@bp.post("/system/destinations")
def create_destination():
    fields = destination_fields(json_body())
    saved = destinations.save(Destination(), fields, actor=current_user.display_name)
    return jsonify(destination_json(saved)), 201


@bp.get("/system/destinations/<id:destination_id>")
def show_destination(destination_id: int):
    return jsonify(destination_json(destinations.get_destination(destination_id)))


@bp.put("/system/destinations/<id:destination_id>")
def update_destination(destination_id: int):
    destination = destinations.get_destination(destination_id)
    fields = destination_fields(json_body())
    return jsonify(destination_json(
        destinations.save(destination, fields, actor=current_user.display_name)))


@bp.delete("/system/destinations/<id:destination_id>")
def delete_destination(destination_id: int):
    destinations.delete(destination_id, actor=current_user.display_name)
    return jsonify(deleted=destination_id)


@bp.post("/system/destinations/<id:destination_id>/test")
def test_destination(destination_id: int):
    result = destinations.probe(destinations.get_destination(destination_id))
    return jsonify(ok=result.ok, message=result.message)


class RescanRequest(Strict):
    destination: Name | None = None  # None: local and every configured destination
    acceptForeign: StrictBool = False


@bp.post("/system/destinations/rescan")
def rescan_destinations():
    request = RescanRequest.model_validate(json_body())
    job_id = rescan.start_rescan(request.destination, request.acceptForeign,
                                 actor=current_user.display_name)
    return jsonify(jobId=job_id), 202
