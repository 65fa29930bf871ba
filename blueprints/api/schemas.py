"""Request schemas for the JSON API; the OpenAPI document is built from them too."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from flask import request
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services import activity
from services.errors import CatalogError

BackupType = Literal["full", "schema-only", "incremental"]
BackupStatus = Literal["queued", "running", "completed", "failed"]


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what a body must be. Every JSON body
    is read here: too deep a nesting and a duplicate key are refused, not guessed at."""
    body: Any = None
    if request.is_json:
        try:
            body = json.loads(request.get_data(), object_pairs_hook=_unique_keys)
        except RecursionError:
            raise _invalid_json("the JSON body is nested too deeply") from None
        except ValueError:
            pass  # not JSON (or not UTF-8): refused below like any non-object
    if not isinstance(body, dict):
        raise _invalid_json(
            "the request body must be a JSON object (Content-Type: application/json)")
    return body


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of two equal keys; which one the sender meant is unknown."""
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise _invalid_json(f"duplicate key {key!r} in the JSON body; send each key once")
        body[key] = value
    return body


def _invalid_json(message: str) -> CatalogError:
    return CatalogError(message, code="invalid_json")


# Control and format characters (NUL, newline, tab, DEL, bidi overrides, line separators).
UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _printable(value: str) -> str:
    """Names end up in HTML, CSV exports, logs and e-mail subjects: printable text only."""
    for char in value:
        if unicodedata.category(char) in UNPRINTABLE:
            raise PydanticCustomError(
                "control_character", "contains the control character U+{code}; use printable "
                "text only", {"code": f"{ord(char):04X}"})
    return value


Printable = AfterValidator(_printable)
Name = Annotated[str, Field(min_length=1, max_length=80), Printable]


def _naive_utc(value: datetime) -> datetime:
    """The catalog stores naive UTC; an aware time is converted, a naive one taken as UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


NaiveUtc = Annotated[datetime, AfterValidator(_naive_utc)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBackupRequest(Strict):
    """``includeData`` is optional and only cross-checks ``type``: a full backup always
    includes the data and a schema-only one never does, so a contradiction is refused."""

    type: BackupType = "full"
    includeData: StrictBool | None = None
    compress: StrictBool = True
    destinations: list[Name] | None = Field(default=None, min_length=1, max_length=20)

    @model_validator(mode="after")
    def include_data_matches_type(self) -> CreateBackupRequest:
        if self.includeData is False and self.type in ("full", "incremental"):
            raise ValueError(f"includeData: false contradicts type '{self.type}'; use type "
                             "'schema-only'")
        if self.includeData is True and self.type == "schema-only":
            raise ValueError("includeData: true contradicts type 'schema-only'; use type 'full'")
        return self


class VerifyRequest(Strict):
    backupId: str
    level: Literal["integrity", "restore"] = "integrity"


def _text_time(value: Any) -> Any:
    """A moment as RFC 3339 text (``2024-01-15T10:31:07Z``), never a bare number."""
    if not isinstance(value, str):
        raise PydanticCustomError("rfc3339", "give the moment as RFC 3339 text with a time "
                                  "zone, e.g. 2024-01-15T10:31:07Z")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_text_time)]


class RestoreRequest(Strict):
    """Exactly one way to restore: a dry run, over the protected database with
    ``confirmDataLoss``, or into a new database named by ``targetDatabase``. With
    ``pointInTime`` (RFC 3339 with a zone), a chain restored to that moment: ``backupId``
    then names a backup of the chain to use, else the newest chain reaching it is used."""

    backupId: str | None = None
    pointInTime: Rfc3339 | None = None
    dryRun: StrictBool = False
    rehearse: StrictBool = False
    confirmDataLoss: StrictBool = False
    targetDatabase: str | None = Field(default=None, min_length=1, max_length=63)
    # create the roles the restore needs and the server lacks, from the backup's saved roles
    createRoles: StrictBool = False

    @model_validator(mode="after")
    def one_clear_intent(self) -> RestoreRequest:
        if self.backupId is None and self.pointInTime is None:
            raise ValueError("name the backup to restore (backupId), or a moment to restore "
                             "to (pointInTime), or both")
        if self.rehearse and not self.dryRun:
            raise ValueError("rehearse goes with dryRun: true")
        if self.dryRun and self.createRoles:
            raise ValueError("dryRun creates nothing: its analysis names the roles createRoles "
                             "would create (compatibility.savedGlobals.rolesToCreate)")
        if self.dryRun and self.confirmDataLoss:
            raise ValueError("dryRun changes nothing, so confirmDataLoss makes no sense with it")
        if self.targetDatabase and self.confirmDataLoss:
            raise ValueError(
                "a restore into a new database (targetDatabase) loses no data: "
                "drop confirmDataLoss, or drop targetDatabase to restore over the database")
        if not (self.dryRun or self.confirmDataLoss or self.targetDatabase):
            raise ValueError(
                "restoring over the protected database replaces all of its current data: "
                "send confirmDataLoss: true to do that, targetDatabase to restore into a new "
                "database, or dryRun: true to see what would change")
        return self

    @property
    def mode(self) -> str:
        return "new-database" if self.targetDatabase else "overwrite"

    @property
    def moment(self) -> datetime | None:
        """``pointInTime`` in UTC."""
        return self.pointInTime.astimezone(UTC) if self.pointInTime else None


class ActivityFilter(Strict):
    """Which events: ``since`` inclusive, ``until`` exclusive, both UTC."""

    since: NaiveUtc | None = None
    until: NaiveUtc | None = None
    actor: str | None = Field(default=None, min_length=1, max_length=80)
    action: str | None = Field(default=None, min_length=1, max_length=40)
    outcome: activity.Outcome | None = None
    kind: activity.Kind | None = None

    def filters(self) -> activity.Filters:
        return activity.Filters(**self.model_dump(exclude={"limit", "format"}))


class ActivityQuery(ActivityFilter):
    limit: int = Field(default=50, ge=1, le=1000)


class ActivityExportQuery(ActivityFilter):
    format: Literal["csv", "jsonl"] = "csv"


class ListBackupsQuery(Strict):
    type: BackupType | None = None
    status: BackupStatus | None = None
    page: int = Field(default=1, ge=1, le=1_000_000)
    perPage: int = Field(default=50, ge=1, le=200)
    after: str | None = Field(default=None, max_length=64)  # a keyset cursor: a backup id


class ScheduleFields(Strict):
    """A schedule as the API spells it; every field optional so PUT can send a subset."""

    name: Name | None = None
    type: Literal["full", "incremental", "schema-only"] | None = None
    frequency: Literal["hourly", "daily", "weekly", "monthly", "cron"] | None = None
    time: str | None = Field(default=None, max_length=5)
    dayOfWeek: int | None = None
    dayOfMonth: int | None = None
    cron: str | None = Field(default=None, max_length=120)
    timezone: str | None = Field(default=None, max_length=64)
    retention: int | None = Field(default=None, ge=1, le=36500)
    keepAtLeast: int | None = Field(default=None, ge=1, le=1000)
    verify: Literal["none", "integrity", "restore"] | None = None
    enabled: StrictBool | None = None
    # null: DEFAULT_DESTINATIONS when it fires
    destinations: list[Name] | None = Field(default=None, min_length=1, max_length=20)


    @model_validator(mode="before")
    @classmethod
    def no_null_for_required_settings(cls, data: Any) -> Any:
        """Only the frequency-specific fields may be cleared with null."""
        if isinstance(data, dict):
            for name in ("name", "type", "frequency", "timezone", "retention", "keepAtLeast",
                         "verify", "enabled"):
                if name in data and data[name] is None:
                    raise ValueError(f"{name}: may not be null")
        return data


class CreateScheduleRequest(ScheduleFields):
    name: Name
    frequency: Literal["hourly", "daily", "weekly", "monthly", "cron"]
