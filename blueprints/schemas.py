"""Request schemas for the JSON API; the OpenAPI document is built from them too."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

BackupType = Literal["full", "schema-only"]
BackupStatus = Literal["queued", "running", "completed", "failed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBackupRequest(Strict):
    """``includeData`` is optional and only cross-checks ``type``: a full backup always
    includes the data and a schema-only one never does, so a contradiction is refused."""

    type: BackupType = "full"
    includeData: StrictBool | None = None
    compress: StrictBool = True

    @model_validator(mode="after")
    def include_data_matches_type(self) -> CreateBackupRequest:
        if self.includeData is False and self.type == "full":
            raise ValueError("includeData: false contradicts type 'full'; use type 'schema-only'")
        if self.includeData is True and self.type == "schema-only":
            raise ValueError("includeData: true contradicts type 'schema-only'; use type 'full'")
        return self


class ListBackupsQuery(Strict):
    type: BackupType | None = None
    status: BackupStatus | None = None
    page: int = Field(default=1, ge=1, le=1_000_000)
    perPage: int = Field(default=50, ge=1, le=200)
