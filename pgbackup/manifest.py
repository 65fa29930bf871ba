"""The manifest: a JSON description of one backup, written after its artifact.

A backup is complete only when both its artifact and its manifest exist. The manifest
holds no secrets and no connection details beyond the database name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pgbackup.ids import is_backup_id, manifest_name
from pgbackup.storage import LocalStorage, validate_name

BackupKind = Literal["full", "schema-only"]
KINDS: tuple[BackupKind, ...] = ("full", "schema-only")


@dataclass(frozen=True)
class TableInfo:
    """One dumped table; ``rows`` is the exact count in the snapshot, None for schema-only."""

    schema: str
    name: str
    rows: int | None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = 1
    backup_id: str
    type: BackupKind
    created: datetime
    database: str
    server_version: str
    pg_dump_version: str
    tool: str
    artifact: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    compression: Literal["zstd", "none"]
    dump_format: Literal["custom"] = "custom"
    tables: list[TableInfo]
    snapshot: str
    duration_ms: int = Field(ge=0)
    parent_id: str | None = None

    @field_validator("backup_id", "parent_id")
    @classmethod
    def _check_backup_id(cls, value: str | None) -> str | None:
        if value is not None and not is_backup_id(value):
            raise ValueError(f"not a backup id: {value!r}")
        return value

    @field_validator("artifact")
    @classmethod
    def _check_artifact(cls, value: str) -> str:
        return validate_name(value)

    @field_validator("created")
    @classmethod
    def _check_created(cls, value: datetime) -> datetime:
        if value.utcoffset() is None or value.utcoffset().total_seconds() != 0:
            raise ValueError("created must be a UTC timestamp")
        return value

    def to_json(self) -> str:
        """Stable JSON: sorted keys, two-space indent, trailing newline."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2) + "\n"


def write_manifest(storage: LocalStorage, manifest: Manifest) -> None:
    with storage.atomic_writer(manifest_name(manifest.backup_id)) as handle:
        handle.write(manifest.to_json().encode("utf-8"))


def read_manifest(storage: LocalStorage, backup_id: str) -> Manifest:
    """Load a manifest; FileNotFoundError if absent, pydantic ValidationError if invalid."""
    with storage.open_read(manifest_name(backup_id)) as handle:
        return Manifest.model_validate_json(handle.read())
